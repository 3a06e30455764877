"""Reading packets and files: capture formats, link layers, header gathering, connection
tracking, tunnels and DNS wire decoding. Shared by offline reading and the live agent."""

"""Flows: the events decoded from packets, the flow and DNS tables built from them, the files
and agent summaries that carry those tables, and the selection of inputs by content."""

#!/bin/sh
# Regenerate the tshark golden files the capture-reader tests compare against.
# Run from this directory with the public corpora beside the checkout:
#   sh make_golden.sh /work/shared/corpora
# Each output file starts with the exact tshark command that produced it (tshark 4.x).
set -eu
C=${1:-../../../../shared/corpora}
OPTS="-n -o ip.defragment:FALSE -o ipv6.defragment:FALSE -o tcp.desegment_tcp_streams:FALSE -o tcp.analyze_sequence_numbers:FALSE"
SYN='tcp.flags.syn == 1 && tcp.flags.ack == 0 && !icmp && !icmpv6'
DNS='dns.flags.response == 1 && dns.count.answers > 0 && (udp.srcport == 53 || tcp.srcport == 53) && !icmp && !icmpv6'
for f in \
    zeek-traces/Traces/dns-edns-ecs.pcap \
    zeek-traces/Traces/var-services-std-ports.pcap \
    zeek-traces/Traces/wikipedia.pcap \
    zeek-traces/Traces/http/methods.pcap \
    zeek-traces/Traces/rotation.pcap \
    zeek-traces/Traces/redis/attr.pcap \
    zeek-traces/Traces/tls/openjdk-25.0.2-zeek.org.pcap \
    zeek-traces/Traces/pcapng-multi-interface.pcapng \
    zeek-traces/Traces/vlan-pcp-dei.pcapng \
    zeek-traces/Traces/krb/kerberos_tso.pcapng \
    tcpdump-tests/pcaps/resp_3_malicious.pcap \
    tcpdump-tests/pcaps/dns_tcp.pcap \
    tcpdump-tests/pcaps/edns-opts.pcap; do
  out=$(echo "$f" | tr '/' '_').tsv
  {
    echo "# file: $f"
    echo "# syn command: tshark -r FILE $OPTS -Y '$SYN' -T fields -e ip.src -e ipv6.src -e tcp.srcport -e ip.dst -e ipv6.dst -e tcp.dstport | sort -u"
    echo "# dns command: tshark -r FILE $OPTS -Y '$DNS' -T fields -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst -e dns.id"
    tshark -r "$C/$f" $OPTS -Y "$SYN" -T fields -e ip.src -e ipv6.src -e tcp.srcport -e ip.dst -e ipv6.dst -e tcp.dstport | sort -u | sed 's/^/syn\t/'
    tshark -r "$C/$f" $OPTS -Y "$DNS" -T fields -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst -e dns.id | sed 's/^/dns\t/'
  } > "$out"
done

"""mbench - the pieces of the mailsys benchmark harness (scripts/bench/run.py).

Pure parts (no processes, no sockets): procstat (the /proc parsers),
pcap (end-of-DATA to 250 latency from a packet capture), counters (the
running counters smtp-source -c and smtp-sink -c print), report
(medians, ratios, Markdown and JSON). The parts that run things: sampler,
tools, systems, cell. Never imported by mailsys.
"""

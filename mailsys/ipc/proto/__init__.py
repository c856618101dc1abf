"""proto - one module per service protocol: its request and reply messages.

Add mailsys/ipc/proto/<service>.py holding that service's @message classes,
named "<service>_<what>". Base messages (Hello, Ok, ErrorReply) are in
mailsys.ipc.messages. This package imports nothing on purpose: importing one
protocol must not register every other one.
"""

"""sasl - server-side SMTP AUTH for smtpd: the user file and the mechanisms.

passwords.py hashes and checks secrets, users.py reads (and rewrites) the
smtpd_sasl_users_file, server.py runs one PLAIN / LOGIN / CRAM-MD5 exchange
as bytes-free, socket-free steps and renders Postfix's replies and log text.
"""

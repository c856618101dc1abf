"""sasl - server-side SMTP AUTH for smtpd: the user file and the mechanisms.

passwords.py hashes and checks secrets, users.py reads (and rewrites) the
smtpd_sasl_users_file, server.py runs one PLAIN / LOGIN / CRAM-MD5 exchange
as bytes-free, socket-free steps and renders Postfix's replies and log text.
"""

# The smtpd_sasl_type values smtpd honours, as postconf -a lists them:
# "cyrus" is mailsys's own users file (smtpd_sasl_users_file), standing
# where Postfix has Cyrus SASL, "dovecot" asks Dovecot's auth server.
SERVER_TYPES = ("cyrus", "dovecot")

# What postconf -A lists for the smtp and lmtp clients. Their PLAIN, LOGIN
# and CRAM-MD5 client (mailsys.smtp.client_auth) does what Postfix's smtp
# gets from the Cyrus client library, Postfix's one client plug-in type and
# smtp_sasl_type's default; mailsys does not read smtp_sasl_type.
CLIENT_TYPES = ("cyrus",)

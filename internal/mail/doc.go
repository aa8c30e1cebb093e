// Package mail sends the mail of certificate lifetime actions
// (EmailContacts) to a vault's certificate contacts through an SMTP
// server. It implements certificates.Mailer; the certificates service decides what to send and
// when (and retries), this package only speaks SMTP.
//
// Credentials are sent only over TLS (implicit TLS, or STARTTLS), except
// to a server on the loopback interface (net/smtp's rule), and the
// password is never logged.
package mail

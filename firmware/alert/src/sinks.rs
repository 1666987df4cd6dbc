//! Where alerts go: the local log (always; the appliance's syslog is its
//! console and `/run/coffer/log`), a remote syslog server over UDP, e-mail
//! over SMTP (STARTTLS, TLS or plain, with optional auth) and a webhook
//! (ntfy, Gotify, or plain JSON). Secrets are never logged.

use std::time::Duration;

use coffer_config::{AlertsConfig, EmailConfig, SmtpSecurity, WebhookConfig, WebhookKind};

use crate::{Alert, Severity};

const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink}: {message}")]
    Failed { sink: String, message: String },
}

fn fail(sink: &str, message: impl std::fmt::Display) -> SinkError {
    SinkError::Failed { sink: sink.into(), message: message.to_string() }
}

pub trait Sink: Send {
    /// A stable name, used to track which sinks still need an alert.
    fn name(&self) -> &str;
    fn send(&self, alert: &Alert, host: &str, reminder: bool) -> Result<(), SinkError>;
}

/// Every sink the config asks for, the local log first.
pub fn configured_sinks(config: &AlertsConfig) -> Vec<Box<dyn Sink>> {
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(LogSink)];
    if let Some(server) = &config.syslog_server {
        sinks.push(Box::new(SyslogSink { server: server.clone() }));
    }
    if let Some(email) = &config.email {
        sinks.push(Box::new(EmailSink { config: email.clone() }));
    }
    if let Some(hook) = &config.webhook {
        sinks.push(Box::new(WebhookSink { config: hook.clone() }));
    }
    sinks
}

fn text(alert: &Alert, reminder: bool) -> String {
    let mut body = alert.body.clone();
    if reminder {
        body = format!("Reminder: this is still the case.\n\n{body}");
    }
    body
}

struct LogSink;

impl Sink for LogSink {
    fn name(&self) -> &str {
        "log"
    }

    fn send(&self, alert: &Alert, host: &str, reminder: bool) -> Result<(), SinkError> {
        let line = format!("{}{} — {}", alert.subject(host), if reminder { " (reminder)" } else { "" }, alert.body.replace('\n', " "));
        match alert.severity {
            Severity::Critical | Severity::Warning if !alert.resolved => log::warn!("alert: {line}"),
            _ => log::info!("alert: {line}"),
        }
        Ok(())
    }
}

struct SyslogSink {
    server: String,
}

impl Sink for SyslogSink {
    fn name(&self) -> &str {
        "syslog"
    }

    fn send(&self, alert: &Alert, host: &str, reminder: bool) -> Result<(), SinkError> {
        // RFC 5424, facility daemon (3): crit 2, warning 4, notice 5, info 6.
        let severity = match (alert.resolved, alert.severity) {
            (true, _) => 5,
            (false, Severity::Critical) => 2,
            (false, Severity::Warning) => 4,
            (false, Severity::Info) => 6,
        };
        let msg = format!(
            "<{}>1 - {host} coffer - - - {} {}",
            3 * 8 + severity,
            alert.subject(host),
            text(alert, reminder).replace('\n', " ")
        );
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| fail("syslog", e))?;
        socket.send_to(msg.as_bytes(), &self.server).map_err(|e| fail("syslog", format!("sending to {}: {e}", self.server)))?;
        Ok(())
    }
}

struct EmailSink {
    config: EmailConfig,
}

impl Sink for EmailSink {
    fn name(&self) -> &str {
        "email"
    }

    fn send(&self, alert: &Alert, host: &str, reminder: bool) -> Result<(), SinkError> {
        use lettre::message::header::ContentType;
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{Message, SmtpTransport, Transport};
        let c = &self.config;
        let mut builder = Message::builder()
            .from(c.from.parse().map_err(|e| fail("email", format!("from address {:?}: {e}", c.from)))?)
            .subject(format!("{}{}", alert.subject(host), if reminder { " (reminder)" } else { "" }))
            .header(ContentType::TEXT_PLAIN);
        for to in &c.to {
            builder = builder.to(to.parse().map_err(|e| fail("email", format!("to address {to:?}: {e}")))?);
        }
        let message = builder.body(text(alert, reminder)).map_err(|e| fail("email", e))?;
        let mut transport = match (&c.ca_file, c.security) {
            (_, SmtpSecurity::None) => SmtpTransport::builder_dangerous(&c.server),
            (None, SmtpSecurity::Starttls) => SmtpTransport::starttls_relay(&c.server).map_err(|e| fail("email", e))?,
            (None, SmtpSecurity::Tls) => SmtpTransport::relay(&c.server).map_err(|e| fail("email", e))?,
            (Some(ca), security) => {
                use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
                let pem = std::fs::read(ca).map_err(|e| fail("email", format!("reading ca-file {}: {e}", ca.display())))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| fail("email", format!("ca-file {}: {e}", ca.display())))?;
                let params = TlsParameters::builder(c.server.clone())
                    .add_root_certificate(cert)
                    .build_rustls()
                    .map_err(|e| fail("email", format!("TLS settings for {}: {e}", c.server)))?;
                let tls = if security == SmtpSecurity::Tls { Tls::Wrapper(params) } else { Tls::Required(params) };
                // `builder_dangerous` only means "no TLS preset": it is set right here.
                SmtpTransport::builder_dangerous(&c.server).tls(tls)
            }
        }
        .port(c.port)
        .timeout(Some(TIMEOUT));
        if !c.username.is_empty() {
            transport = transport.credentials(Credentials::new(c.username.clone(), c.password.0.clone()));
        }
        transport
            .build()
            .send(&message)
            .map(|_| ())
            .map_err(|e| fail("email", format!("sending through {}:{}: {e}", c.server, c.port)))
    }
}

/// `scheme://host[:port]` of a URL, without user info, path or query.
fn url_host(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    format!("{scheme}://{host}")
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(code) => format!("the server answered HTTP {code}"),
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        _ => "request failed".into(),
    }
}


struct WebhookSink {
    config: WebhookConfig,
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        "webhook"
    }

    fn send(&self, alert: &Alert, host: &str, reminder: bool) -> Result<(), SinkError> {
        let tls = ureq::tls::TlsConfig::builder()
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).tls_config(tls).build().into();
        let c = &self.config;
        let title = alert.subject(host);
        let body = text(alert, reminder);
        let result = match c.kind {
            WebhookKind::Ntfy => {
                let priority = match (alert.resolved, alert.severity) {
                    (true, _) | (false, Severity::Info) => "default",
                    (false, Severity::Warning) => "high",
                    (false, Severity::Critical) => "urgent",
                };
                let tags = match (alert.resolved, alert.severity) {
                    (true, _) => "white_check_mark",
                    (false, Severity::Info) => "information_source",
                    (false, _) => "warning",
                };
                let mut req = agent.post(&c.url).header("Title", &title).header("Priority", priority).header("Tags", tags);
                if !c.token.0.is_empty() {
                    req = req.header("Authorization", &format!("Bearer {}", c.token.0));
                }
                req.send(body.as_str())
            }
            WebhookKind::Gotify => {
                let url = if c.url.trim_end_matches('/').ends_with("/message") {
                    c.url.clone()
                } else {
                    format!("{}/message", c.url.trim_end_matches('/'))
                };
                let priority = match (alert.resolved, alert.severity) {
                    (true, _) | (false, Severity::Info) => 2,
                    (false, Severity::Warning) => 5,
                    (false, Severity::Critical) => 8,
                };
                let json = serde_json::json!({ "title": title, "message": body, "priority": priority });
                agent.post(&url).header("X-Gotify-Key", &c.token.0).header("Content-Type", "application/json").send(json.to_string().as_str())
            }
            WebhookKind::Json => {
                let json = serde_json::json!({
                    "host": host, "key": alert.key, "severity": alert.severity, "title": alert.title,
                    "subject": title, "body": body, "resolved": alert.resolved, "reminder": reminder, "time": alert.time,
                });
                let mut req = agent.post(&c.url).header("Content-Type", "application/json");
                if !c.token.0.is_empty() {
                    req = req.header("Authorization", &format!("Bearer {}", c.token.0));
                }
                req.send(json.to_string().as_str())
            }
        };
        // The URL may carry secrets (an ntfy topic, user:token@): name only its host,
        // and never pass on ureq's own text, which may quote the URL.
        let shown = url_host(&c.url);
        result.map(|_| ()).map_err(|e| fail("webhook", format!("posting to {shown}: {}", describe(&e))))
    }
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn url_host_hides_secrets() {
        assert_eq!(url_host("https://ntfy.sh/my-secret-topic"), "https://ntfy.sh");
        assert_eq!(url_host("https://user:tok@gotify.home:8443/message?token=x"), "https://gotify.home:8443");
        assert_eq!(url_host("http://10.0.2.2:47080"), "http://10.0.2.2:47080");
    }
}

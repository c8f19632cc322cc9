//! The SSRF guard of webhook-like channels: unless `alerts.allow_private_targets` is set, a
//! channel may post only to public addresses. A URL is checked when a channel is made through
//! the API, and again at every send: the HTTP client resolves names through [`GuardedResolver`],
//! which refuses a name with any non-public address and hands the checked addresses to the
//! connection, so a name that resolves differently the second time (DNS rebinding) cannot reach
//! an address the check did not see. URLs naming an address literally are checked by
//! [`check_literal`] before the request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why a target was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "{host} resolves to {addr}, a {kind} address: alerts go to public addresses only \
         (alerts.allow_private_targets allows others)"
    )]
    Private {
        host: String,
        addr: IpAddr,
        kind: &'static str,
    },
    #[error("cannot resolve {host}: {message}")]
    Unresolvable { host: String, message: String },
    #[error("{0} is not a valid http(s) URL with a host")]
    BadUrl(String),
}

/// What kind of non-public address `ip` is; `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xfe00 == 0xfc00 {
                // fc00::/7, unique local (AWS's fd00:ec2::254 metadata endpoint among them)
                Some("private")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // 64:ff9b::/96 maps IPv4 addresses (NAT64): judge the embedded one
                let [.., a, b, c, d] = v6.octets();
                non_public_v4(Ipv4Addr::new(a, b, c, d))
            } else if first == 0x2001 && v6.segments()[1] == 0x0db8 {
                Some("documentation")
            } else {
                None
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        // 169.254.0.0/16 holds the cloud metadata endpoint 169.254.169.254
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) {
        Some("documentation or benchmarking")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("reserved")
    } else {
        None
    }
}

/// The host and port a channel URL posts to.
fn host_port(url: &str) -> Result<(String, u16), Refused> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Refused::BadUrl(redact(url)))?;
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(Refused::BadUrl(redact(url))),
    };
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| Refused::BadUrl(redact(url)))?;
    Ok((host, port))
}

/// A URL as errors show it: scheme and host only (webhook URLs carry their secret in the path).
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}/...",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        ),
        Err(_) => "the URL".to_owned(),
    }
}

fn judge(host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Result<(), Refused> {
    for addr in addrs {
        if let Some(kind) = non_public(addr) {
            return Err(Refused::Private {
                host: host.to_owned(),
                addr,
                kind,
            });
        }
    }
    Ok(())
}

/// Refuses a URL whose host is a non-public address written literally (names are checked by
/// [`GuardedResolver`] when the request resolves them).
pub fn check_literal(url: &str) -> Result<(), Refused> {
    let (host, _) = host_port(url)?;
    match host.parse::<IpAddr>() {
        Ok(ip) => judge(&host, [ip]),
        Err(_) => Ok(()),
    }
}

/// Resolves the URL's host now and refuses it when any address is non-public (or it does not
/// resolve): the check when a channel is made.
pub async fn check_url(url: &str) -> Result<(), Refused> {
    let (host, port) = host_port(url)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return judge(&host, [ip]);
    }
    let addrs = resolve(&host, port).await?;
    judge(&host, addrs.iter().map(SocketAddr::ip))
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Refused::Unresolvable {
            host: host.to_owned(),
            message: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Refused::Unresolvable {
            host: host.to_owned(),
            message: "no address".to_owned(),
        });
    }
    Ok(addrs)
}

/// The HTTP client's resolver for alerts: the system's, refusing a name with any non-public
/// address. The connection goes to the addresses checked here, so a second lookup cannot
/// swap in another one.
#[derive(Debug, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is replaced by the URL's when connecting.
            let addrs = resolve(&host, 0).await?;
            judge(&host, addrs.iter().map(SocketAddr::ip))?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// True when `err` (or one of its causes) is a refusal of this guard: such a delivery is
/// given up, not retried.
pub fn is_refusal(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<Refused>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "private"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a00:1", "private"),
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(non_public(ip), Some(kind), "{addr}");
        }
        for addr in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(non_public(ip), None, "{addr}");
        }
    }

    #[test]
    fn literal_addresses_in_urls_are_refused_names_are_left_to_the_resolver() {
        let err = check_literal("http://127.0.0.1:8080/hook").unwrap_err();
        assert_eq!(
            err.to_string(),
            "127.0.0.1 resolves to 127.0.0.1, a loopback address: alerts go to public \
             addresses only (alerts.allow_private_targets allows others)"
        );
        assert!(check_literal("http://[::1]/x").is_err());
        assert!(check_literal("http://169.254.169.254/latest/meta-data/").is_err());
        assert!(check_literal("https://8.8.8.8/hook").is_ok());
        assert!(check_literal("https://hooks.slack.com/services/T/B/secret").is_ok());
        assert_eq!(
            check_literal("not a url").unwrap_err().to_string(),
            "the URL is not a valid http(s) URL with a host"
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_when_made_and_when_sent() {
        let made = check_url("http://localhost:9/hook").await.unwrap_err();
        assert!(
            made.to_string().contains("localhost resolves to")
                && made.to_string().contains("loopback"),
            "{made}"
        );
        // At send time the client resolves through the guard: the request never connects.
        let client = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(GuardedResolver))
            .build()
            .unwrap();
        let err = client
            .post("http://localhost:9/hook")
            .send()
            .await
            .unwrap_err();
        assert!(is_refusal(&err), "{err:?}");
        // An error of another kind is no refusal.
        let other = std::io::Error::other("connection reset");
        assert!(!is_refusal(&other));
    }
}

//! Small checks that several sections share (the loader side: no component is imported).

/// True for `localhost` and loopback IP addresses (the only hosts a plain, unencrypted
/// connection may go to).
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "[::1]", "::1", "LOCALHOST"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["imap.musterstadt.de", "10.0.0.1", "localhost.example.org"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}

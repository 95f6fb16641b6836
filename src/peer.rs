//! The caller's peer identity, from the source the policy names
//! (docs/policy.md "Peer identity"). Never a request header: a client can
//! set any header, but not the certificate its connection was verified
//! with, nor the filter state Envoy's own configuration writes.
//!
//! Host calls: `connection` 1-2 (the mTLS flag, then the URI SAN only with
//! mTLS), `istio_waypoint` 1 (the filter state), `auto` 2 either way.

use crate::config::PeerIdentitySource;
use crate::host::{ConnectionPeer, PeerIdentity};

/// The peer's URI SAN text for the engine, which parses it strictly as a
/// SPIFFE ID (anything else, e.g. the comma-joined SANs of a certificate
/// with several, is no identity). `None`: no identity from this source.
pub fn identity<H: PeerIdentity + ?Sized>(source: PeerIdentitySource, host: &H) -> Option<String> {
    match source {
        PeerIdentitySource::Connection => match host.connection_peer() {
            ConnectionPeer::Mtls(san) => text(san),
            ConnectionPeer::NotMtls => None,
        },
        PeerIdentitySource::IstioWaypoint => text(host.waypoint_principal()),
        // An mTLS connection speaks for itself, even without a URI SAN: the
        // filter state is consulted only where the connection proves nothing
        // (a waypoint's internal listener).
        PeerIdentitySource::Auto => match host.connection_peer() {
            ConnectionPeer::Mtls(san) => text(san),
            ConnectionPeer::NotMtls => text(host.waypoint_principal()),
        },
    }
}

/// UTF-8 and non-empty, or nothing.
fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PeerIdentitySource::{Auto, Connection, IstioWaypoint};
    use crate::testing::FakePeer;
    use std::cell::Cell;

    const CERT: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
    const TUNNEL: &str = "spiffe://cluster.local/ns/ci/sa/deployer";

    fn mtls(san: Option<&[u8]>) -> ConnectionPeer {
        ConnectionPeer::Mtls(san.map(<[u8]>::to_vec))
    }

    #[test]
    fn each_source_reads_only_what_it_names() {
        let cert = Some(CERT.as_bytes());
        let tunnel = Some(TUNNEL.as_bytes().to_vec());
        // (source, connection, waypoint filter state, identity)
        type Row = (
            PeerIdentitySource,
            ConnectionPeer,
            Option<Vec<u8>>,
            Option<&'static str>,
        );
        let table: &[Row] = &[
            // sidecar: mTLS certificate, no filter state
            (Auto, mtls(cert), None, Some(CERT)),
            (Connection, mtls(cert), None, Some(CERT)),
            (IstioWaypoint, mtls(cert), None, None),
            // waypoint: internal connection, filter state from the tunnel
            (Auto, ConnectionPeer::NotMtls, tunnel.clone(), Some(TUNNEL)),
            (Connection, ConnectionPeer::NotMtls, tunnel.clone(), None),
            (
                IstioWaypoint,
                ConnectionPeer::NotMtls,
                tunnel.clone(),
                Some(TUNNEL),
            ),
            // both present: auto trusts the connection it was handed
            (Auto, mtls(cert), tunnel.clone(), Some(CERT)),
            (IstioWaypoint, mtls(cert), tunnel.clone(), Some(TUNNEL)),
            // mTLS without a URI SAN: no identity, and no fallback
            (Auto, mtls(None), tunnel.clone(), None),
            (Auto, mtls(Some(b"")), tunnel.clone(), None),
            (Connection, mtls(None), None, None),
            // nothing at all
            (Auto, ConnectionPeer::NotMtls, None, None),
            (IstioWaypoint, ConnectionPeer::NotMtls, None, None),
        ];
        for (i, (source, connection, waypoint, want)) in table.iter().enumerate() {
            let host = FakePeer {
                connection: connection.clone(),
                waypoint: waypoint.clone(),
            };
            assert_eq!(
                identity(*source, &host).as_deref(),
                *want,
                "row {i}: {source:?}"
            );
        }
    }

    #[test]
    fn malformed_filter_state_is_no_identity() {
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"spiffe://cluster.local/ns/a/sa/\xc3",
        ] {
            let host = FakePeer {
                connection: ConnectionPeer::NotMtls,
                waypoint: Some(bad.to_vec()),
            };
            assert_eq!(identity(Auto, &host), None, "{bad:?}");
            assert_eq!(identity(IstioWaypoint, &host), None, "{bad:?}");
        }
    }

    /// What the engine makes of the text: the same strict SPIFFE parse for
    /// both sources, so a value Envoy's `%DOWNSTREAM_PEER_URI_SAN%` joins
    /// from several SANs, or a "-" placeholder, is no identity.
    #[test]
    fn waypoint_text_is_parsed_as_strictly_as_a_san() {
        use crate::pattern::spiffe::SpiffeId;
        for bad in [
            "-",
            "spiffe://cluster.local/ns/shop/sa/frontend,spiffe://cluster.local/ns/ci/sa/deployer",
            " spiffe://cluster.local/ns/shop/sa/frontend",
            "spiffe://cluster.local/ns/shop/sa/frontend\n",
            "URI=spiffe://cluster.local/ns/shop/sa/frontend",
        ] {
            let host = FakePeer {
                connection: ConnectionPeer::NotMtls,
                waypoint: Some(bad.as_bytes().to_vec()),
            };
            let text = identity(Auto, &host);
            assert!(
                text.as_deref()
                    .map(SpiffeId::parse)
                    .is_some_and(|r| r.is_err()),
                "{bad:?}"
            );
        }
    }

    /// `istio_waypoint` never asks for the connection, `connection` never for
    /// the filter state: one host call fewer, and no way for one source to
    /// leak into the other.
    #[derive(Default)]
    struct Counting {
        connection: Cell<u32>,
        waypoint: Cell<u32>,
    }
    impl PeerIdentity for Counting {
        fn connection_peer(&self) -> ConnectionPeer {
            self.connection.set(self.connection.get() + 1);
            ConnectionPeer::NotMtls
        }
        fn waypoint_principal(&self) -> Option<Vec<u8>> {
            self.waypoint.set(self.waypoint.get() + 1);
            None
        }
    }

    #[test]
    fn host_calls_per_source() {
        for (source, connection, waypoint) in
            [(Connection, 1, 0), (IstioWaypoint, 0, 1), (Auto, 1, 1)]
        {
            let host = Counting::default();
            identity(source, &host);
            assert_eq!(
                (host.connection.get(), host.waypoint.get()),
                (connection, waypoint),
                "{source:?}"
            );
        }
    }
}

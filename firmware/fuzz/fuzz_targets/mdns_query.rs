//! mDNS queries: the responder never panics, and what it sends parses.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};

use coffer_mdns::Responder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(responder) = Responder::new("coffer", Ipv4Addr::new(192, 168, 1, 2), 22) else {
        return;
    };
    // From the mDNS port (multicast rules) and from elsewhere (legacy unicast).
    for port in [5353, 40000] {
        let from = SocketAddr::from((Ipv4Addr::new(192, 168, 1, 9), port));
        if let Some(reply) = responder.answer(data, from) {
            assert!(coffer_mdns::message::parse(&reply.message).is_ok());
        }
    }
});

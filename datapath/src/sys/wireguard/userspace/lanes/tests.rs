use super::*;

/// An IPv4 UDP packet from 10.0.0.1:`sport` to 10.0.0.2:7 of `len` bytes.
fn udp4(sport: u16, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(28)];
    p[0] = 0x45;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&7u16.to_be_bytes());
    p
}

fn none(_: u64) -> bool {
    false
}

#[test]
fn a_lone_small_packet_of_a_new_flow_takes_the_fast_lane() {
    let mut c = Classifier::default();
    let t = Instant::now();
    assert_eq!(c.classify(&udp4(1000, 36), 1, 36, t, none).0, Lane::Fast);
}

#[test]
fn a_segmented_read_makes_its_flow_bulk_until_it_has_been_quiet_for_the_hold() {
    let mut c = Classifier::default();
    let t = Instant::now();
    let p = udp4(2000, 1400);
    assert_eq!(c.classify(&p, 40, 56_000, t, none).0, Lane::Bulk);
    // Its next lone packet must not overtake the segments still queued.
    let soon = t + Duration::from_millis(5);
    assert_eq!(c.classify(&p, 1, 52, soon, none).0, Lane::Bulk);
    let later = soon + BULK_HOLD;
    assert_eq!(
        c.classify(&p, 1, 52, later, none).0,
        Lane::Fast,
        "quiet for the hold since its last bulk read"
    );
    // Another flow was never held back (one in a bucket of its own: flows sharing a bucket
    // share its class).
    let held = bucket(flow_key(&c.hasher, &p));
    let other = (2001..)
        .map(|port| udp4(port, 36))
        .find(|o| bucket(flow_key(&c.hasher, o)) != held)
        .unwrap_or_default();
    assert_eq!(c.classify(&other, 1, 36, soon, none).0, Lane::Fast);
}

#[test]
fn a_stream_of_lone_packets_turns_bulk_past_the_byte_budget() {
    let mut c = Classifier::default();
    let t = Instant::now();
    let p = udp4(3000, 1400);
    let lanes: Vec<Lane> = (0..30)
        .map(|i| {
            c.classify(&p, 1, 1400, t + Duration::from_micros(i * 10), none)
                .0
        })
        .collect();
    let fast = lanes.iter().take_while(|l| **l == Lane::Fast).count();
    assert_eq!(
        fast,
        BULK_BYTES / 1400,
        "fast until the window's budget is spent"
    );
    assert!(lanes[fast..].iter().all(|l| *l == Lane::Bulk), "{lanes:?}");
}

#[test]
fn a_flow_with_a_read_in_the_backlog_waits_behind_it() {
    let mut c = Classifier::default();
    let p = udp4(4000, 36);
    let t = Instant::now();
    let (lane, key) = c.classify(&p, 1, 36, t, none);
    assert_eq!(lane, Lane::Fast);
    let (lane, k) = c.classify(&p, 1, 36, t, |w| w == key);
    assert_eq!((lane, k), (Lane::Bulk, key));
}

#[test]
fn every_read_in_the_bulk_lane_renews_its_flows_hold() {
    let mut c = Classifier::default();
    let t = Instant::now();
    let p = udp4(5000, 1400);
    assert_eq!(c.classify(&p, 40, 56_000, t, none).0, Lane::Bulk);
    let held = t + BULK_HOLD - Duration::from_millis(1);
    assert_eq!(c.classify(&p, 1, 52, held, none).0, Lane::Bulk);
    // That held read may still wait in the bulk lane: the next one must not overtake it.
    let next = t + BULK_HOLD + Duration::from_millis(1);
    assert_eq!(c.classify(&p, 1, 52, next, none).0, Lane::Bulk);
    assert_eq!(
        c.classify(&p, 1, 52, next + BULK_HOLD, none).0,
        Lane::Fast,
        "a whole hold after the last bulk-lane read"
    );
}

#[test]
fn the_fast_lane_carries_at_most_its_budget_per_window() {
    let mut c = Classifier::default();
    let t = Instant::now();
    let lanes: Vec<Lane> = (0..200u16)
        .map(|i| c.classify(&udp4(10_000 + i, 1400), 1, 1400, t, none).0)
        .collect();
    let fast = lanes.iter().filter(|l| **l == Lane::Fast).count();
    assert_eq!(
        fast,
        FAST_BUDGET / 1400,
        "many sparse flows share one budget"
    );
    // The next window has a budget again, for the flows the overflow did not hold bulk (a
    // flow may share a held bucket: most do not).
    let next = t + WINDOW;
    let again = (0..fast as u16)
        .filter(|i| c.classify(&udp4(10_000 + i, 36), 1, 36, next, none).0 == Lane::Fast)
        .count();
    assert!(again > fast / 2, "{again} of {fast} fast again");
}

#[test]
fn a_budget_starts_afresh_each_window_and_says_how_long_is_left() {
    let mut b = Budget::new(3);
    let t = Instant::now();
    assert!(b.take(2, t) && b.take(1, t) && !b.take(1, t));
    assert_eq!(
        b.rest(t + Duration::from_millis(4)),
        WINDOW - Duration::from_millis(4)
    );
    assert!(b.take(3, t + WINDOW));
    assert_eq!(b.rest(t + 3 * WINDOW), Duration::ZERO);
}

#[test]
fn flows_differ_by_ports_and_addresses_and_ipv6_is_read() {
    let h = std::hash::RandomState::new();
    let flow_key = |p: &[u8]| flow_key(&h, p);
    assert_ne!(flow_key(&udp4(1, 36)), flow_key(&udp4(2, 36)));
    let mut other = udp4(1, 36);
    other[19] = 3;
    assert_ne!(flow_key(&udp4(1, 36)), flow_key(&other));
    assert_eq!(
        flow_key(&udp4(1, 36)),
        flow_key(&udp4(1, 1000)),
        "length is not the flow"
    );
    // Fragments: only the first carries ports, so no fragment is told apart by them.
    let (mut f1, mut f2) = (udp4(1, 36), udp4(2, 36));
    f1[6] = 0x20; // more fragments
    f2[7] = 0xb9; // an offset
    assert_eq!(
        flow_key(&f1),
        flow_key(&f2),
        "a fragment's flow is its addresses"
    );
    let mut v6 = vec![0u8; 48];
    v6[0] = 0x60;
    v6[6] = 17;
    v6[40..42].copy_from_slice(&5u16.to_be_bytes());
    let mut v6b = v6.clone();
    v6b[40..42].copy_from_slice(&6u16.to_be_bytes());
    assert_ne!(flow_key(&v6), flow_key(&v6b));
    assert_eq!(flow_key(&[0x10, 0, 0]), 0, "not IP: one flow");
}

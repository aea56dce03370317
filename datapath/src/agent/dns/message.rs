//! The few things the DNS proxy reads from and writes into DNS messages (hickory-proto does
//! the wire format).

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::RData;
use std::io::{self, Read, Write};
use std::net::IpAddr;

/// A query as a client sent it.
#[derive(Debug, Clone)]
pub struct Query {
    /// The message.
    pub message: Message,
    /// The one name it asks for, lower case with the trailing dot.
    pub name: String,
}

/// The query in `bytes`: a standard query with exactly one question (what stub resolvers
/// send); anything else is None.
pub fn parse_query(bytes: &[u8]) -> Option<Query> {
    let message = Message::from_vec(bytes).ok()?;
    let m = &message.metadata;
    if m.message_type != MessageType::Query || m.op_code != OpCode::Query {
        return None;
    }
    let [q] = message.queries.as_slice() else {
        return None;
    };
    let name = super::cache::DnsCache::normalize(&q.name().to_ascii());
    Some(Query { message, name })
}

/// The answer to `query` with response code `code` and no records (REFUSED for a query the
/// policy does not allow, as Cilium's proxy answers; SERVFAIL when the server is silent).
pub fn error_response(query: &Message, code: ResponseCode) -> Option<Vec<u8>> {
    let mut r = Message::error_msg(query.metadata.id, query.metadata.op_code, code);
    r.metadata.recursion_desired = query.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_queries(query.queries.iter().cloned());
    r.to_vec().ok()
}

/// The addresses a response gives, with their TTLs in seconds, under the name queried and
/// under each record's own name (a CNAME chain's last name): (name, address, ttl). Empty for
/// anything but a successful response.
pub fn answered(bytes: &[u8]) -> Vec<(String, IpAddr, u32)> {
    let Ok(m) = Message::from_vec(bytes) else {
        return Vec::new();
    };
    if m.metadata.message_type != MessageType::Response
        || m.metadata.response_code != ResponseCode::NoError
    {
        return Vec::new();
    }
    let asked = m
        .queries
        .first()
        .map(|q| super::cache::DnsCache::normalize(&q.name().to_ascii()));
    let mut out = Vec::new();
    for r in &m.answers {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        let owner = super::cache::DnsCache::normalize(&r.name.to_ascii());
        if let Some(q) = &asked
            && *q != owner
        {
            out.push((q.clone(), ip, r.ttl));
        }
        out.push((owner, ip, r.ttl));
    }
    out
}

/// One DNS message framed as over TCP (a two-byte length first, RFC 1035 §4.2.2); None at
/// the end of the stream.
pub fn read_framed(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut msg)?;
    Ok(Some(msg))
}

/// Writes `msg` framed as over TCP, in one write.
pub fn write_framed(w: &mut impl Write, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len())
        .map_err(|_| io::Error::other("a DNS message over 65,535 bytes"))?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    w.write_all(&framed)
}

/// The message ID of `bytes` (its first two bytes).
pub fn id(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use hickory_proto::op::Query as Question;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};
    use hickory_proto::rr::{Name, Record, RecordType};
    use std::str::FromStr;

    fn query(name: &str) -> Message {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Question::query(
            Name::from_str(name).unwrap(),
            RecordType::A,
        ));
        m
    }

    #[test]
    fn a_refused_query_keeps_its_id_and_question() {
        let q = parse_query(&query("API.Example.com.").to_vec().unwrap()).unwrap();
        assert_eq!(q.name, "api.example.com.");
        let r =
            Message::from_vec(&error_response(&q.message, ResponseCode::Refused).unwrap()).unwrap();
        assert_eq!(r.metadata.id, 0x1234);
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert!(r.metadata.recursion_desired);
        assert_eq!(r.queries, q.message.queries);
        assert!(r.answers.is_empty());
    }

    #[test]
    fn a_response_is_not_a_query() {
        let r = query("a.example.").into_response();
        assert!(parse_query(&r.to_vec().unwrap()).is_none());
        assert!(parse_query(b"\x00\x01garbage").is_none());
    }

    #[test]
    fn answers_count_for_the_name_asked_and_the_cname_target() {
        let mut r = query("www.example.com.").into_response();
        let n = |s: &str| Name::from_str(s).unwrap();
        r.add_answer(Record::from_rdata(
            n("www.example.com."),
            300,
            RData::CNAME(CNAME(n("edge.example.net."))),
        ));
        r.add_answer(Record::from_rdata(
            n("edge.example.net."),
            30,
            RData::A(A::new(192, 0, 2, 7)),
        ));
        r.add_answer(Record::from_rdata(
            n("edge.example.net."),
            60,
            RData::AAAA(AAAA::from_str("2001:db8::7").unwrap()),
        ));
        let got = answered(&r.to_vec().unwrap());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(got.contains(&("www.example.com.".into(), v4, 30)));
        assert!(got.contains(&("edge.example.net.".into(), v4, 30)));
        assert_eq!(got.len(), 4);
        // An error response teaches nothing.
        r.metadata.response_code = ResponseCode::NXDomain;
        assert!(answered(&r.to_vec().unwrap()).is_empty());
    }
}

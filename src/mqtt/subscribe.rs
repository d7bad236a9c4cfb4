//! The subscriptions a program holds: sent on every connection, and the one place that
//! tells a granted subscription from a refused one.
//!
//! A broker answers a SUBSCRIBE it does not allow (an ACL, a bad filter) with a SUBACK whose
//! return code is `0x80` instead of an error or a disconnect: a program that does not look
//! runs on, "subscribed", and receives nothing. So every SUBACK goes through [`refused`], and
//! a program counts as subscribed (READY, see [`crate::notify::ready_once`]) only when
//! every SUBACK of its session granted every filter. Pure logic: the pump does the I/O.

use rumqttc::{SubAck, SubscribeFilter, SubscribeReasonCode};

/// Whether the broker refused any filter of `ack`.
pub fn refused(ack: &SubAck) -> bool {
    ack.return_codes
        .iter()
        .any(|c| matches!(c, SubscribeReasonCode::Failure))
}

/// How a session's subscriptions ended, once the last SUBACK came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The broker granted every filter.
    Granted,
    /// At least one filter was refused.
    Refused,
}

/// The SUBSCRIBE packets to send on every connection, in order, and what the broker
/// answered so far in the current one.
///
/// Several packets (batches) rather than one: the broker handles them in order, so what a
/// batch brings (retained messages) arrives before the SUBACK of the next one. The alerts
/// daemon reads its retained outputs back this way before it judges any input.
///
/// A session found present is sent every batch too, although it should hold them already:
/// - mosquitto (2.0.11, Debian 12) restores a persistent session's plain subscriptions from
///   its persistence file after a restart, but not its shared ones (`$share/GROUP/FILTER`):
///   a member that did not subscribe again would receive nothing more, its share of the
///   stream dealt to nobody;
/// - a filter added to the configuration since the session began is in no session;
/// - a SUBSCRIBE the broker never read (it went down first) left a session without it.
///
/// Subscribing again to a subscription the broker still holds replaces it (MQTT 3.1.1
/// §3.8.4) and keeps the session's queue; what it does bring is the retained messages under
/// it, sent again: see [`Plan::is_resent`]. (A filter removed from the configuration stays
/// in the session until it ends: `iotitan-logger leave`.)
#[derive(Debug, Clone, Default)]
pub struct Plan {
    batches: Vec<Vec<SubscribeFilter>>,
    /// The topic filter of each filter of `batches` (`FILTER` of `$share/GROUP/FILTER`): the
    /// topics whose retained messages a present session is sent again.
    topics: Vec<String>,
    /// This connection's session was found present.
    resumed: bool,
    /// Batches of this session handed to the client so far.
    sent: usize,
    /// SUBACKs of this session still expected; `None` outside a session's subscribing.
    awaited: Option<usize>,
    refused: bool,
}

impl Plan {
    /// A plan sending `batches` in order; empty batches are left out (an empty SUBSCRIBE is
    /// a protocol error).
    pub fn new(batches: Vec<Vec<SubscribeFilter>>) -> Plan {
        let batches: Vec<_> = batches.into_iter().filter(|b| !b.is_empty()).collect();
        let topics = batches
            .iter()
            .flatten()
            .map(|f| shared_inner(&f.path).unwrap_or(&f.path).to_owned())
            .collect();
        Plan {
            // Nothing is owed before the first session.
            sent: usize::MAX,
            batches,
            topics,
            ..Plan::default()
        }
    }

    /// Whether there is nothing to subscribe to.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Every filter a connection subscribes to, in order: for the log.
    pub fn filters(&self) -> impl Iterator<Item = &str> {
        self.batches.iter().flatten().map(|f| f.path.as_str())
    }

    /// A fresh session began: every batch is to be sent.
    pub fn start(&mut self) {
        self.begin(false);
    }

    /// A session was found present: every batch is to be sent again (see [`Plan`]), and the
    /// retained messages that brings are told apart ([`Plan::is_resent`]).
    pub fn resume(&mut self) {
        self.begin(true);
    }

    fn begin(&mut self, resumed: bool) {
        self.resumed = resumed;
        self.sent = 0;
        let n = self.batches.len();
        self.awaited = (n > 0).then_some(n);
        self.refused = false;
    }

    /// The connection ended: what was asked in it will not be answered.
    pub fn stop(&mut self) {
        self.sent = usize::MAX;
        self.awaited = None;
    }

    /// The next batch to send, if any is owed in this session.
    pub fn owed(&self) -> Option<&[SubscribeFilter]> {
        self.batches.get(self.sent).map(Vec::as_slice)
    }

    /// Whether a publish on `topic` with the retain flag set is one the broker sent again
    /// because a present session subscribed again (`retained`: the publish's flag). The
    /// broker sets the flag only on messages sent for a new subscription, never on those of an established one (MQTT 3.1.1 §3.3.1.3), so on a
    /// present session such a message was delivered, live, when it was published: a
    /// consumer that keeps every message (the logger) would keep it twice, with today's
    /// time, making a silent sensor look alive. Subscriptions of the program's own
    /// ([`super::Requests`]) are not in the plan and never match.
    pub fn is_resent(&self, topic: &str, retained: bool) -> bool {
        retained && self.resumed && self.topics.iter().any(|f| crate::topic::matches(f, topic))
    }

    /// The batch from [`Plan::owed`] was handed to the client.
    pub fn sent(&mut self) {
        self.sent = self.sent.saturating_add(1);
    }

    /// A SUBACK for one of our batches came; `refused` from [`refused`]. `Some` once it was
    /// the session's last.
    pub fn on_suback(&mut self, refused: bool) -> Option<Outcome> {
        let n = self.awaited?;
        self.refused |= refused;
        if n > 1 {
            self.awaited = Some(n - 1);
            return None;
        }
        self.awaited = None;
        Some(if self.refused {
            Outcome::Refused
        } else {
            Outcome::Granted
        })
    }
}

/// `FILTER` of a shared subscription `$share/GROUP/FILTER` (GROUP non-empty, without
/// wildcards); `None` for any other filter.
pub fn shared_inner(filter: &str) -> Option<&str> {
    let (group, inner) = filter.strip_prefix("$share/")?.split_once('/')?;
    (!group.is_empty() && !group.contains(['+', '#']) && !inner.is_empty()).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    fn batch(topics: &[&str]) -> Vec<SubscribeFilter> {
        topics
            .iter()
            .map(|t| SubscribeFilter::new(t.to_string(), QoS::AtLeastOnce))
            .collect()
    }

    fn ack(codes: Vec<SubscribeReasonCode>) -> SubAck {
        SubAck::new(1, codes)
    }

    #[test]
    fn a_failure_code_anywhere_is_a_refusal() {
        use SubscribeReasonCode::{Failure, Success};
        assert!(!refused(&ack(vec![Success(QoS::AtLeastOnce)])));
        assert!(refused(&ack(vec![Success(QoS::AtMostOnce), Failure])));
        assert!(refused(&ack(vec![Failure])));
    }

    #[test]
    fn batches_are_sent_in_order_and_the_last_suback_decides() {
        let mut p = Plan::new(vec![batch(&["out/#"]), vec![], batch(&["in/a", "in/b"])]);
        assert_eq!(p.filters().collect::<Vec<_>>(), ["out/#", "in/a", "in/b"]);
        assert_eq!(p.owed(), None, "nothing before a session");
        p.start();
        assert_eq!(p.owed().map(|b| b[0].path.as_str()), Some("out/#"));
        p.sent();
        assert_eq!(p.owed().map(|b| b.len()), Some(2));
        p.sent();
        assert_eq!(p.owed(), None);
        assert_eq!(p.on_suback(false), None);
        assert_eq!(p.on_suback(false), Some(Outcome::Granted));
        // A stray SUBACK after the session's last one changes nothing.
        assert_eq!(p.on_suback(true), None);
    }

    #[test]
    fn one_refused_batch_refuses_the_session_and_a_new_session_starts_over() {
        let mut p = Plan::new(vec![batch(&["a"]), batch(&["b"])]);
        p.start();
        assert_eq!(p.on_suback(true), None);
        assert_eq!(p.on_suback(false), Some(Outcome::Refused));
        p.start();
        assert_eq!(p.on_suback(false), None);
        assert_eq!(p.on_suback(false), Some(Outcome::Granted));
    }

    #[test]
    fn a_lost_connection_forgets_the_unanswered_batches() {
        let mut p = Plan::new(vec![batch(&["a"]), batch(&["b"])]);
        p.start();
        p.sent();
        p.stop();
        assert_eq!(p.owed(), None);
        assert_eq!(p.on_suback(false), None);
        assert!(Plan::new(vec![vec![]]).is_empty());
    }

    #[test]
    fn a_present_session_subscribes_again_to_every_filter() {
        let mut p = Plan::new(vec![
            batch(&["plain/#"]),
            batch(&["$share/g/a/#", "b/+", "$share/g/c"]),
        ]);
        p.resume();
        assert_eq!(p.owed().map(|b| b[0].path.as_str()), Some("plain/#"));
        p.sent();
        assert_eq!(p.owed().map(|b| b.len()), Some(3));
        p.sent();
        assert_eq!(p.owed(), None);
        assert_eq!(p.on_suback(false), None);
        assert_eq!(p.on_suback(false), Some(Outcome::Granted));
    }

    #[test]
    fn only_retained_messages_under_a_filter_of_a_resumed_session_count_as_sent_again() {
        let mut p = Plan::new(vec![batch(&["$share/g/home/#", "other/+"])]);
        p.start();
        assert!(!p.is_resent("home/t", true), "a fresh session keeps them");
        p.resume();
        assert!(p.is_resent("home/t", true));
        assert!(p.is_resent("other/t", true));
        assert!(!p.is_resent("home/t", false), "a live or queued message");
        assert!(!p.is_resent("other/t/deeper", true), "under no filter");
        assert!(!p.is_resent("$iotitan/leave/x", true));
    }

    #[test]
    fn shared_filters_are_told_apart() {
        assert_eq!(shared_inner("$share/iotitan/#"), Some("#"));
        assert_eq!(shared_inner("$share/g/a/b/+"), Some("a/b/+"));
        for f in [
            "#",
            "share/g/a",
            "$share/g",
            "$share//a",
            "$share/+/a",
            "$share/g/",
            "$SYS/#",
        ] {
            assert_eq!(shared_inner(f), None, "{f}");
        }
    }
}

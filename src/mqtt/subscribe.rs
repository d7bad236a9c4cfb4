//! The subscriptions a program holds: sent again on every fresh session, and the one place
//! that tells a granted subscription from a refused one.
//!
//! A broker answers a SUBSCRIBE it does not allow (an ACL, a bad filter) with a SUBACK whose
//! return code is `0x80` instead of an error or a disconnect: a program that does not look
//! runs on, "subscribed", and receives nothing. So every SUBACK goes through [`refused`], and
//! a program counts as subscribed (READY, see [`super::ready_once_subscribed`]) only when
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

/// The SUBSCRIBE packets to send on every fresh session, in order, and what the broker
/// answered so far in the current one.
///
/// Several packets (batches) rather than one: the broker handles them in order, so what a
/// batch brings (retained messages) arrives before the SUBACK of the next one. The alerts
/// daemon reads its retained outputs back this way before it judges any input.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    batches: Vec<Vec<SubscribeFilter>>,
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
        Plan {
            // Nothing is owed before the first session.
            sent: batches.len(),
            batches,
            ..Plan::default()
        }
    }

    /// Whether there is nothing to subscribe to.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Every filter, in order: for the log.
    pub fn filters(&self) -> impl Iterator<Item = &str> {
        self.batches.iter().flatten().map(|f| f.path.as_str())
    }

    /// A fresh session began: every batch is to be sent (again).
    pub fn start(&mut self) {
        self.sent = 0;
        self.awaited = (!self.is_empty()).then_some(self.batches.len());
        self.refused = false;
    }

    /// The connection ended: what was asked in it will not be answered.
    pub fn stop(&mut self) {
        self.sent = self.batches.len();
        self.awaited = None;
    }

    /// The next batch to send, if any is owed in this session.
    pub fn owed(&self) -> Option<&[SubscribeFilter]> {
        self.batches.get(self.sent).map(Vec::as_slice)
    }

    /// The batch from [`Plan::owed`] was handed to the client.
    pub fn sent(&mut self) {
        self.sent += 1;
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
}

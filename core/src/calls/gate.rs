//! The gate incoming to-device signalling passes before it reaches a call: addressed to our
//! session, from a member of our mesh call (held a while when it overtook the membership), not
//! for a call that ended, and put back in `seq` order, with hard caps on everything held.

use std::time::{Duration, Instant};

use ruma::{OwnedUserId, UserId};

use super::Calls;
use crate::reorder::Arrival;
use crate::voip::{self, HangupReason};
use crate::{Now, Outputs};

/// Reorder buffers kept for call IDs we may not know yet...
const MAX_REORDER_BUFFERS: usize = 64;
/// ...and of those, from any one user (devices times calls), so one member's flood of gapped
/// messages cannot hold the others' calls off.
const MAX_REORDER_BUFFERS_PER_SENDER: usize = 8;
/// Signalling addressed to our session that came before the sender's (or our own) call
/// membership: to-device messages can overtake the sync that brings the state. Held this long,
/// this many at most.
const EARLY_SIGNAL_WAIT: Duration = Duration::from_secs(10);
const MAX_EARLY_SIGNALS: usize = 32;
/// ...and this many from any one user, so one sender cannot crowd out a real caller's invite.
const MAX_EARLY_SIGNALS_PER_SENDER: usize = 8;

/// A to-device message waiting for the membership that makes it count.
#[derive(Debug)]
pub(super) struct EarlySignal {
    until: Instant,
    sender: OwnedUserId,
    event_type: String,
    content: serde_json::Value,
}
/// Ended call IDs remembered, so late messages for them are dropped quietly.
pub(super) const MAX_ENDED_REMEMBERED: usize = 256;

impl Calls {
    /// A to-device `m.call.*` message.
    pub fn on_to_device(
        &mut self,
        now: Now,
        sender: &UserId,
        event_type: &str,
        content: &serde_json::Value,
        out: &mut Outputs,
    ) {
        let message = match voip::parse(event_type, content) {
            Ok(m) => m,
            Err(why) => {
                return log::warn!("dropping a {event_type} from {sender}: {why}");
            }
        };
        let Some(routing) = message.routing.clone() else {
            return log::warn!("dropping a to-device {event_type} from {sender}: no conf_id");
        };
        if routing.dest_session_id != self.me.session_id {
            return log::debug!("dropping a {event_type} from {sender} for another session");
        }
        if !self.is_member(sender, &routing) {
            // Addressed to this session, so meant for a call of ours: the membership that
            // makes it count may still be on its way.
            return self.hold_early(now, sender, event_type, content);
        }
        if self.ended.contains(&message.call_id) {
            return log::debug!("dropping a {event_type} for ended call {}", message.call_id);
        }
        let key = (
            sender.to_owned(),
            routing.device_id.clone(),
            message.call_id.clone(),
        );
        if !self.reorder.contains_key(&key) && self.reorder.len() >= MAX_REORDER_BUFFERS {
            // Keep only buffers of calls we have or that hold messages waiting for a gap.
            let calls = &self.calls;
            self.reorder
                .retain(|(_, _, id), r| calls.contains_key(id) || r.held() > 0);
        }
        if !self.reorder.contains_key(&key) && self.reorder.len() >= MAX_REORDER_BUFFERS {
            return log::warn!("dropping a {event_type} from {sender}: too many calls signalled");
        }
        if !self.reorder.contains_key(&key)
            && self.reorder.keys().filter(|k| *k.0 == *sender).count()
                >= MAX_REORDER_BUFFERS_PER_SENDER
        {
            return log::warn!("dropping a {event_type} from {sender}: too many of its calls open");
        }
        let call_id = message.call_id.clone();
        let arrival = self
            .reorder
            .entry(key)
            .or_default()
            .arrive(now.mono, routing.seq, message);
        match arrival {
            Arrival::Ready(messages) => {
                for m in messages {
                    self.dispatch_device(now, sender, m, out);
                }
            }
            Arrival::Held => log::debug!("holding {event_type} seq {} of {call_id}", routing.seq),
            Arrival::Duplicate => log::debug!("dropping a duplicate {event_type} of {call_id}"),
            Arrival::TooFarAhead { seq, expected } if !self.calls.contains_key(&call_id) => {
                log::warn!("dropping a {event_type} from {sender}: seq {seq}, expected {expected}");
            }
            Arrival::TooFarAhead { seq, expected } => {
                log::warn!(
                    "{sender} jumped to seq {seq} in call {call_id} (expected {expected}); hanging up"
                );
                self.hang_up_call(&call_id, HangupReason::UnknownError, out);
                self.forget_ended();
            }
        }
        // A buffer for a call we do not have, with nothing waiting in it, is not kept.
        let key = (
            sender.to_owned(),
            routing.device_id.clone(),
            call_id.clone(),
        );
        if !self.calls.contains_key(&call_id)
            && self.reorder.get(&key).is_some_and(|r| r.held() == 0)
        {
            self.reorder.remove(&key);
        }
    }

    /// Feeds the early signalling whose membership has arrived; forgets what waited too long.
    pub(super) fn release_early(&mut self, now: Now, out: &mut Outputs) {
        for early in std::mem::take(&mut self.early) {
            if now.mono >= early.until {
                log::warn!(
                    "dropping a {} from {}: its sender never joined our call",
                    early.event_type,
                    early.sender
                );
                continue;
            }
            let member = voip::parse(&early.event_type, &early.content)
                .ok()
                .and_then(|m| m.routing)
                .is_some_and(|r| self.is_member(&early.sender, &r));
            if member {
                self.on_to_device(now, &early.sender, &early.event_type, &early.content, out);
            } else {
                self.early.push_back(early);
            }
        }
    }

    /// Whether the routing names a device in a mesh call we are in.
    fn is_member(&self, sender: &UserId, routing: &voip::Routing) -> bool {
        self.meshes
            .iter()
            .filter(|m| m.conf_id == routing.conf_id)
            .flat_map(|m| &m.peers)
            .any(|p| {
                p.user_id == sender
                    && p.device_id == routing.device_id
                    && p.session_id == routing.sender_session_id
            })
    }

    fn hold_early(
        &mut self,
        now: Now,
        sender: &UserId,
        event_type: &str,
        content: &serde_json::Value,
    ) {
        if self.early.len() >= MAX_EARLY_SIGNALS {
            return log::warn!(
                "dropping a {event_type} from {sender}: not a member of our call, and too much \
                 signalling is already waiting for memberships"
            );
        }
        if self.early.iter().filter(|e| e.sender == sender).count() >= MAX_EARLY_SIGNALS_PER_SENDER
        {
            return log::warn!(
                "dropping a {event_type} from {sender}: not a member of our call, and too much of \
                 its signalling is already waiting for its membership"
            );
        }
        log::debug!("holding a {event_type} from {sender} until its membership arrives");
        self.early.push_back(EarlySignal {
            until: now.mono + EARLY_SIGNAL_WAIT,
            sender: sender.to_owned(),
            event_type: event_type.to_owned(),
            content: content.clone(),
        });
    }

    pub(super) fn remember_ended(&mut self, call_id: &str) {
        if self.ended.len() >= MAX_ENDED_REMEMBERED {
            self.ended.pop_front();
        }
        self.ended.push_back(call_id.to_owned());
    }
}

//! Our own call membership in one room: publish it behind a delayed leave (MSC4140) that we keep
//! restarting, refresh it before it expires, and take it back on leave. If roomd dies, the
//! homeserver sends the delayed leave for us, so no ghost outlives the delay.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ruma::events::call::member::{
    ActiveFocus, ActiveLivekitFocus, Application, CallApplicationContent, CallMemberEventContent,
    CallScope, Focus, LivekitFocus,
};
use ruma::{MilliSecondsSinceUnixEpoch, OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, UInt};
use serde_json::{Value, json};

use super::backoff::Backoff;
use super::events::CALL_MEMBER;
use super::membership::{CallId, Member};
use super::{DelayedAction, FailureKind, MatrixCommand, MatrixFailure, Now, Output, Outputs};

/// How long after our last restart the homeserver sends our leave, for mesh calls...
pub const LEAVE_DELAY: Duration = Duration::from_secs(20);
/// ...and how often the delayed leave is restarted while we are alive.
pub const RESTART_EVERY: Duration = Duration::from_secs(5);
/// Element Call's timings for the same (`config/ConfigOptions.ts`), used in its sessions.
pub const SESSION_LEAVE_DELAY: Duration = Duration::from_secs(18);
pub const SESSION_RESTART_EVERY: Duration = Duration::from_secs(4);
/// How long a published mesh membership claims to last, and when it is re-published.
pub const MEMBERSHIP_LIFETIME: Duration = Duration::from_secs(3600);
pub const REFRESH_AFTER: Duration = Duration::from_secs(1800);
/// A session membership's `expires` grows in these steps from its `created_ts`, as Element
/// Call's does (4 h, 8 h, ...)...
pub const SESSION_EXPIRES_STEP: Duration = Duration::from_secs(4 * 3600);
/// ...re-published this long before it would lapse.
pub const SESSION_REFRESH_BEFORE: Duration = Duration::from_secs(3600);

/// Who we publish as.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    /// This process's MSC3401 device session; peers address their calls to it.
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Out,
    /// Scheduling the delayed leave, then publishing the membership.
    Joining(CallId),
    In(CallId),
    Leaving(CallId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    ScheduleLeave,
    Publish,
    Refresh,
    Restart,
    SendLeave,
    WriteLeave,
}

#[derive(Debug)]
pub struct OwnCall {
    room_id: OwnedRoomId,
    phase: Phase,
    delay_id: Option<String>,
    /// Learnt from the first attempt: whether the homeserver has delayed events.
    delayed_events: Option<bool>,
    pending: HashMap<u64, Purpose>,
    next_restart: Option<Instant>,
    refresh_at: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// Whether the room's state has shown our membership since we published it.
    seen_in_state: bool,
    /// The LiveKit transport our session membership names (`foci_preferred`).
    transport: Option<String>,
    /// Our session membership's first join (its `origin_server_ts`, as the room's state shows
    /// it), which refreshes keep as `created_ts`.
    session_created_ms: Option<u64>,
    /// Our session membership's `expires`, grown at each refresh.
    session_expires: Duration,
    /// The transport changed while in a session: publish again.
    transport_changed: bool,
}

/// How long the leave is delayed, and how often it is restarted, for `call`.
fn leave_timings(call: &CallId) -> (Duration, Duration) {
    match call {
        CallId::Rtc { .. } => (SESSION_LEAVE_DELAY, SESSION_RESTART_EVERY),
        CallId::Mesh { .. } | CallId::Focus { .. } => (LEAVE_DELAY, RESTART_EVERY),
    }
}

/// The state key and content of our membership in `call`; `session`: for the room's Element
/// Call session, its transport, first join and lifetime.
fn membership(
    call: &CallId,
    me: &Identity,
    now: Now,
    room_id: &RoomId,
    session: &SessionPublish,
) -> (String, Value) {
    match call {
        CallId::Mesh { group_call_id } => (
            me.user_id.to_string(),
            json!({"m.calls": [{
                "m.call_id": group_call_id,
                "m.foci": [],
                "m.devices": [{
                    "device_id": me.device_id,
                    "session_id": me.session_id,
                    "expires_ts": now.unix_ms + MEMBERSHIP_LIFETIME.as_millis() as u64,
                    "feeds": [{"purpose": "m.usermedia"}],
                }],
            }]}),
        ),
        CallId::Rtc { .. } => session_membership(me, room_id, session),
        // A focus conference has no membership of its own; never published.
        CallId::Focus { .. } => (state_key(call, me), json!({})),
    }
}

/// What our session membership says besides who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPublish {
    /// The LiveKit token service we publish on.
    pub transport: Option<String>,
    /// Our first join, for `created_ts` (absent on the first join, as Element Call writes it).
    pub created_ms: Option<u64>,
    pub expires: Duration,
}

/// The MSC4143 session membership for the room call, as Element Call writes it in its default
/// (compatibility) mode: state key `_@user:server_DEVICE_m.call`, multi-SFU with our transport
/// first in `foci_preferred` and the room ID as its alias. ruma's type has no `membershipID` or
/// `m.call.intent`, which Element Call reads and sends: they are added to its JSON.
pub fn session_membership(
    me: &Identity,
    room_id: &RoomId,
    session: &SessionPublish,
) -> (String, Value) {
    let foci_preferred = session
        .transport
        .iter()
        .map(|url| Focus::Livekit(LivekitFocus::new(room_id.to_string(), url.clone())))
        .collect();
    let mut focus_active = ActiveLivekitFocus::new();
    focus_active.focus_selection = "multi_sfu".into();
    let created_ts = session
        .created_ms
        .map(|ms| MilliSecondsSinceUnixEpoch(UInt::new_saturating(ms)));
    let content = CallMemberEventContent::new(
        Application::Call(CallApplicationContent::new(String::new(), CallScope::Room)),
        me.device_id.clone(),
        ActiveFocus::Livekit(focus_active),
        foci_preferred,
        created_ts,
        Some(session.expires),
    );
    let mut content = serde_json::to_value(content).expect("a membership serializes");
    content["membershipID"] = json!(format!("{}:{}", me.user_id, me.device_id));
    content["m.call.intent"] = json!("video");
    (state_key(&CallId::room_call(), me), content)
}

fn state_key(call: &CallId, me: &Identity) -> String {
    match call {
        CallId::Mesh { .. } => me.user_id.to_string(),
        CallId::Rtc { .. } | CallId::Focus { .. } => {
            format!("_{}_{}_m.call", me.user_id, me.device_id)
        }
    }
}

impl OwnCall {
    pub fn new(room_id: OwnedRoomId) -> Self {
        OwnCall {
            room_id,
            phase: Phase::Out,
            delay_id: None,
            delayed_events: None,
            pending: HashMap::new(),
            next_restart: None,
            refresh_at: None,
            retry_at: None,
            backoff: Backoff::new(Duration::from_secs(2), Duration::from_secs(60)),
            seen_in_state: false,
            transport: None,
            session_created_ms: None,
            session_expires: SESSION_EXPIRES_STEP,
            transport_changed: false,
        }
    }

    /// The LiveKit transport to name in a session membership. A change while in a session is
    /// published at the next step.
    pub fn set_transport(&mut self, transport: Option<String>) {
        if self.transport != transport {
            self.transport = transport;
            self.transport_changed = matches!(self.phase, Phase::In(CallId::Rtc { .. }));
        }
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The LiveKit transport a session membership of ours names.
    pub fn transport(&self) -> Option<&str> {
        self.transport.as_deref()
    }

    /// The call we are in, or on our way into.
    pub fn current(&self) -> Option<&CallId> {
        match &self.phase {
            Phase::Joining(c) | Phase::In(c) => Some(c),
            Phase::Out | Phase::Leaving(_) => None,
        }
    }

    /// The call whose membership we have published and seen in the room's state: only then do
    /// the others know us, and calls to them can start.
    pub fn established(&self) -> Option<&CallId> {
        match &self.phase {
            Phase::In(c) if self.seen_in_state => Some(c),
            _ => None,
        }
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        // A retry waits for outstanding requests, whose results wake the core anyway.
        let retry = self.retry_at.filter(|_| self.pending.is_empty());
        [self.next_restart, self.refresh_at, retry]
            .into_iter()
            .flatten()
            .min()
    }

    fn send(&mut self, purpose: Purpose, command: MatrixCommand, request: u64, out: &mut Outputs) {
        self.pending.insert(request, purpose);
        out.push_back(Output::Matrix(command));
    }

    fn send_state(
        &mut self,
        purpose: Purpose,
        ids: &mut u64,
        state_key: String,
        content: Value,
        delay: Option<Duration>,
        out: &mut Outputs,
    ) {
        *ids += 1;
        let command = MatrixCommand::SendState {
            request: *ids,
            room_id: self.room_id.clone(),
            event_type: CALL_MEMBER.to_owned(),
            state_key,
            content,
            delay_ms: delay.map(|d| d.as_millis() as u64),
        };
        self.send(purpose, command, *ids, out);
    }

    fn update_delayed(
        &mut self,
        purpose: Purpose,
        ids: &mut u64,
        action: DelayedAction,
        out: &mut Outputs,
    ) {
        let Some(delay_id) = self.delay_id.clone() else {
            return;
        };
        *ids += 1;
        let command = MatrixCommand::UpdateDelayed {
            request: *ids,
            delay_id,
            action,
        };
        self.send(purpose, command, *ids, out);
    }

    /// Moves toward `wanted`: join it, leave what we are in, or keep things fresh.
    pub fn converge(
        &mut self,
        now: Now,
        wanted: Option<&CallId>,
        me: &Identity,
        ids: &mut u64,
        out: &mut Outputs,
    ) {
        match self.phase.clone() {
            Phase::Out => {
                let Some(call) = wanted else {
                    // Nothing to join: no retry either.
                    self.retry_at = None;
                    return;
                };
                if self.retry_at.is_some_and(|t| now.mono < t) || !self.pending.is_empty() {
                    return;
                }
                self.retry_at = None;
                self.phase = Phase::Joining(call.clone());
                self.start_join(now, call, me, ids, out);
            }
            Phase::In(call) if wanted != Some(&call) => {
                log::info!("leaving {call} in {}", self.room_id);
                self.phase = Phase::Leaving(call.clone());
                self.next_restart = None;
                self.refresh_at = None;
                self.start_leave(&call, me, ids, out);
            }
            Phase::In(call) => {
                if self.next_restart.is_some_and(|t| now.mono >= t) {
                    self.next_restart = Some(now.mono + leave_timings(&call).1);
                    if !self.pending.values().any(|p| *p == Purpose::Restart) {
                        self.update_delayed(Purpose::Restart, ids, DelayedAction::Restart, out);
                    }
                }
                if self.refresh_at.is_some_and(|t| now.mono >= t) || self.transport_changed {
                    self.refresh_at = None;
                    if !self.transport_changed {
                        // Element Call's refresh: the same created_ts, a longer expires.
                        self.session_expires += SESSION_EXPIRES_STEP;
                    }
                    self.transport_changed = false;
                    self.publish(Purpose::Refresh, now, &call, me, ids, out);
                }
            }
            Phase::Leaving(call) => {
                // A leave whose write failed is retried until it lands.
                if self.pending.is_empty() && self.retry_at.is_some_and(|t| now.mono >= t) {
                    self.retry_at = None;
                    self.write_leave(&call, me, ids, out);
                }
            }
            Phase::Joining(_) => {}
        }
    }

    fn start_join(
        &mut self,
        now: Now,
        call: &CallId,
        me: &Identity,
        ids: &mut u64,
        out: &mut Outputs,
    ) {
        log::info!("joining {call} in {}", self.room_id);
        if self.delayed_events == Some(false) {
            self.publish(Purpose::Publish, now, call, me, ids, out);
        } else {
            // The leave is scheduled first, so there is never a moment a crash leaves a ghost.
            let key = state_key(call, me);
            self.send_state(
                Purpose::ScheduleLeave,
                ids,
                key,
                json!({}),
                Some(leave_timings(call).0),
                out,
            );
        }
    }

    /// Writes `{}` over our membership, now.
    fn write_leave(&mut self, call: &CallId, me: &Identity, ids: &mut u64, out: &mut Outputs) {
        let key = state_key(call, me);
        self.send_state(Purpose::WriteLeave, ids, key, json!({}), None, out);
    }

    /// Writes our membership of `call` (for `purpose`: a first publish or a refresh).
    fn publish(
        &mut self,
        purpose: Purpose,
        now: Now,
        call: &CallId,
        me: &Identity,
        ids: &mut u64,
        out: &mut Outputs,
    ) {
        let session = SessionPublish {
            transport: self.transport.clone(),
            created_ms: self.session_created_ms,
            expires: self.session_expires,
        };
        let (key, content) = membership(call, me, now, &self.room_id, &session);
        self.send_state(purpose, ids, key, content, None, out);
    }

    fn start_leave(&mut self, call: &CallId, me: &Identity, ids: &mut u64, out: &mut Outputs) {
        if self.delay_id.is_some() {
            self.update_delayed(Purpose::SendLeave, ids, DelayedAction::Send, out);
        } else {
            self.write_leave(call, me, ids, out);
        }
    }

    /// What the room's state says about our membership now. If it vanished while we are in the
    /// call (a previous run's delayed leave firing late, or someone overwriting it), publish
    /// it again.
    pub fn observe(
        &mut self,
        now: Now,
        ours: Option<&Member>,
        me: &Identity,
        ids: &mut u64,
        out: &mut Outputs,
    ) {
        let Phase::In(call) = self.phase.clone() else {
            return;
        };
        if let Some(member) = ours {
            self.seen_in_state = true;
            if matches!(call, CallId::Rtc { .. }) && self.session_created_ms.is_none() {
                // Our first join as the homeserver stamped it: kept as created_ts from now on.
                self.session_created_ms = Some(member.created_ms);
                if self.refresh_at.is_some() {
                    self.refresh_at = Some(self.refresh_time(now, &call));
                }
            }
        } else if self.seen_in_state && self.pending.is_empty() {
            log::warn!(
                "our membership in {} was removed from the room's state; publishing it again",
                self.room_id
            );
            self.seen_in_state = false;
            self.phase = Phase::Joining(call.clone());
            self.next_restart = None;
            self.refresh_at = None;
            self.publish(Purpose::Publish, now, &call, me, ids, out);
        }
    }

    /// The result of a state write we asked for. Returns false if it was not ours.
    pub fn on_state_sent(
        &mut self,
        now: Now,
        request: u64,
        result: Result<Option<String>, MatrixFailure>,
        me: &Identity,
        ids: &mut u64,
        out: &mut Outputs,
    ) -> bool {
        let Some(purpose) = self.pending.remove(&request) else {
            return false;
        };
        match (purpose, result, self.phase.clone()) {
            (Purpose::ScheduleLeave, Ok(delay_id), Phase::Joining(call)) => {
                self.delayed_events = Some(true);
                self.delay_id = delay_id;
                self.publish(Purpose::Publish, now, &call, me, ids, out);
            }
            (Purpose::ScheduleLeave, Err(e), Phase::Joining(call))
                if e.kind == FailureKind::Unsupported =>
            {
                log::warn!(
                    "the homeserver has no delayed events (MSC4140): if roomd dies, its \
                     membership stays until it expires ({e:?})"
                );
                self.delayed_events = Some(false);
                self.publish(Purpose::Publish, now, &call, me, ids, out);
            }
            (Purpose::Publish, Ok(_), Phase::Joining(call)) => {
                log::info!("in {call} in {}", self.room_id);
                self.seen_in_state = false;
                self.backoff.succeed();
                // Until the room's state shows our first join, now is close enough to it.
                self.refresh_at = Some(self.refresh_time(now, &call));
                let restart = leave_timings(&call).1;
                self.next_restart = self.delay_id.as_ref().map(|_| now.mono + restart);
                self.phase = Phase::In(call);
            }
            (Purpose::ScheduleLeave | Purpose::Publish, Err(e), Phase::Joining(call)) => {
                let wait = self.backoff.fail();
                log::warn!(
                    "could not join {call} in {}: {}; retrying in {}s",
                    self.room_id,
                    e.message,
                    wait.as_secs()
                );
                // A scheduled leave that is now orphaned fires on its own and writes `{}`.
                self.delay_id = None;
                self.phase = Phase::Out;
                self.retry_at = Some(now.mono + wait);
            }
            (Purpose::Refresh, Ok(_), Phase::In(call)) => {
                self.refresh_at = Some(self.refresh_time(now, &call));
            }
            (Purpose::Refresh, Err(e), Phase::In(_)) => {
                log::warn!(
                    "could not refresh our membership in {}: {}",
                    self.room_id,
                    e.message
                );
                self.refresh_at = Some(now.mono + Duration::from_secs(60));
            }
            (Purpose::WriteLeave, Ok(_), Phase::Leaving(_)) => self.left(),
            (Purpose::WriteLeave, Err(e), Phase::Leaving(_)) => {
                let wait = self.backoff.fail();
                log::warn!(
                    "could not write our leave in {}: {}; retrying in {}s",
                    self.room_id,
                    e.message,
                    wait.as_secs()
                );
                self.retry_at = Some(now.mono + wait);
            }
            (purpose, result, phase) => {
                log::debug!("late result for {purpose:?} in phase {phase:?}: {result:?}");
            }
        }
        true
    }

    /// The result of a delayed-event update we asked for. Returns false if it was not ours.
    pub fn on_delayed_updated(
        &mut self,
        now: Now,
        request: u64,
        result: Result<(), MatrixFailure>,
        me: &Identity,
        ids: &mut u64,
        out: &mut Outputs,
    ) -> bool {
        let Some(purpose) = self.pending.remove(&request) else {
            return false;
        };
        match (purpose, result, self.phase.clone()) {
            (Purpose::Restart, Ok(()), _) => {}
            (Purpose::Restart, Err(e), Phase::In(call)) if e.kind == FailureKind::NotFound => {
                // The leave fired (we were too slow) or was lost: our membership may be gone.
                log::warn!(
                    "our delayed leave in {} is gone; joining again",
                    self.room_id
                );
                self.delay_id = None;
                self.next_restart = None;
                self.refresh_at = None;
                self.phase = Phase::Joining(call.clone());
                self.start_join(now, &call, me, ids, out);
            }
            (Purpose::Restart, Err(e), _) => {
                log::warn!(
                    "could not restart our delayed leave in {}: {}",
                    self.room_id,
                    e.message
                );
            }
            (Purpose::SendLeave, Ok(()), Phase::Leaving(_)) => self.left(),
            (Purpose::SendLeave, Err(e), Phase::Leaving(call)) => {
                log::debug!(
                    "sending the delayed leave failed ({}); writing it",
                    e.message
                );
                self.delay_id = None;
                self.write_leave(&call, me, ids, out);
            }
            (purpose, result, phase) => {
                log::debug!("late result for {purpose:?} in phase {phase:?}: {result:?}");
            }
        }
        true
    }

    /// When our membership of `call`, (re)published now, is next refreshed.
    fn refresh_time(&self, now: Now, call: &CallId) -> Instant {
        match call {
            CallId::Rtc { .. } => {
                let created = self.session_created_ms.unwrap_or(now.unix_ms);
                let lapses = created.saturating_add(self.session_expires.as_millis() as u64);
                now.instant_at(lapses.saturating_sub(SESSION_REFRESH_BEFORE.as_millis() as u64))
            }
            CallId::Mesh { .. } | CallId::Focus { .. } => now.mono + REFRESH_AFTER,
        }
    }

    fn left(&mut self) {
        log::info!("left the call in {}", self.room_id);
        self.session_created_ms = None;
        self.session_expires = SESSION_EXPIRES_STEP;
        self.transport_changed = false;
        self.seen_in_state = false;
        self.phase = Phase::Out;
        self.delay_id = None;
        self.next_restart = None;
        self.refresh_at = None;
        self.retry_at = None;
    }
}

#[cfg(test)]
mod tests;

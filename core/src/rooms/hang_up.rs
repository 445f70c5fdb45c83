//! The people in the room's say: hang up (leave, and stay out of that call until it ends or
//! someone rings) and join (lift a hang-up and the join policy's wait for a ring; with no call
//! on, start one).

use super::Rooms;
use crate::membership::CallId;
use crate::policy::{self, HungUp, Me};
use crate::room::OwnMembership;
use crate::{JoinPolicy, Now, Outputs};

impl Rooms {
    /// Leaves the call in `room` (or whichever served room we are in a call in) and stays out of
    /// it until it ends or someone rings. Returns what was done, or why nothing was.
    pub fn hang_up(&mut self, room: Option<&str>) -> Result<String, String> {
        let me_user = self.me.user_id.clone();
        let target = self.served.iter_mut().find(|r| {
            let named = room.is_none_or(|name| {
                r.configured.as_str() == name || r.room_id.as_ref().is_some_and(|id| id == name)
            });
            let in_call = r.own_call.as_ref().and_then(|c| c.current()).is_some();
            named && (in_call || r.focus.is_some())
        });
        let Some(served) = target else {
            return Err("not in a call".to_owned());
        };
        let call = match &served.focus {
            Some(focus) => CallId::Focus {
                user_id: focus.to_string(),
            },
            None => served
                .own_call
                .as_ref()
                .and_then(|c| c.current())
                .cloned()
                .expect("checked above"),
        };
        let ring_seen = served
            .room_id
            .as_ref()
            .and_then(|id| self.states.get(id))
            .and_then(|s| s.latest_ring(&me_user));
        log::info!(
            "hang-up in {}: leaving and staying out of {call}",
            served.configured
        );
        served.hung_up = Some(HungUp { call, ring_seen });
        served.asked_to_join = false;
        if let Some(started) = &mut served.started {
            started.hang_up();
        }
        Ok(format!("hung up in {}", served.configured))
    }

    /// Joins the call in `room` (or in the first served room with one), lifting a hang-up
    /// and the join policy's wait for a ring. Returns what will happen, or why nothing can.
    pub fn join(
        &mut self,
        room: Option<&str>,
        now: Now,
        ids: &mut u64,
        out: &mut Outputs,
    ) -> Result<String, String> {
        if self.settings.join == JoinPolicy::Never {
            return Err("the join policy (calls.join) is never".to_owned());
        }
        if self.served.iter().any(|r| r.focus.is_some()) {
            return Err("already in the conference".to_owned());
        }
        let me = Me {
            user_id: &self.me.user_id,
            device_id: self.me.device_id.as_str(),
            sessions: self.sessions,
        };
        let focus = self.settings.conference_focus.as_ref();
        let mut named = false;
        let mut could_start = None;
        for (i, served) in self.served.iter_mut().enumerate() {
            let matches = room.is_none_or(|name| {
                served.configured.as_str() == name
                    || served.room_id.as_ref().is_some_and(|id| id == name)
            });
            named |= matches;
            let Some(state) = served.room_id.as_ref().and_then(|id| self.states.get(id)) else {
                continue;
            };
            if !matches || served.own != OwnMembership::Joined {
                continue;
            }
            if served
                .own_call
                .as_ref()
                .is_some_and(|c| c.current().is_some())
            {
                return Err(format!("already in the call in {}", served.configured));
            }
            let focus_here = focus.is_some_and(|f| state.is_joined(f));
            if focus_here || policy::waiting_call(state, &me, None, now.unix_ms) {
                served.hung_up = None;
                served.asked_to_join = true;
                return Ok(format!("joining the call in {}", served.configured));
            }
            if served.started.is_some() {
                return Err(format!("already started a call in {}", served.configured));
            }
            if policy::others_in_any_call(state, &me, now.unix_ms) {
                // Starting a second call would split the meeting.
                let why = served.decision.as_ref().map_or("", |d| d.why);
                return Err(format!(
                    "cannot join the call in {}: {why}",
                    served.configured
                ));
            }
            could_start.get_or_insert(i);
        }
        match (room, could_start) {
            (Some(name), _) if !named => Err(format!("{name} is not a served room")),
            (_, Some(i)) if self.settings.start_calls => Ok(self.start_call(i, now, ids, out)),
            _ => Err("no call to join".to_owned()),
        }
    }
}

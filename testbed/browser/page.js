// roomd's browser visitor: matrix-js-sdk's own GroupCall and MatrixCall, in a real Chromium.
// Bundled by esbuild into dist/page.bundle.js; driver.mjs calls `window.visitor.<cmd>(args)`.
//
// The client runs without crypto and with `useE2eForGroupCall: false`: group-call signalling then
// goes out as plain to-device messages (js-sdk 43 throws "Unimplemented" for the encrypted path).

import {
    CallEvent,
    ClientEvent,
    GroupCallEvent,
    GroupCallIntent,
    GroupCallState,
    GroupCallType,
    createClient,
    createNewMatrixCall,
} from "matrix-js-sdk";
import { CallEventHandlerEvent } from "matrix-js-sdk/lib/webrtc/callEventHandler.js";
import { GroupCallEventHandlerEvent } from "matrix-js-sdk/lib/webrtc/groupCallEventHandler.js";

const state = {
    client: null,
    groupCall: null,
    call: null, // the 1:1 call
    incoming: [], // 1:1 calls ringing, not yet answered
    events: [], // VoIP events sent and received
    media: new Map(), // stream id -> { el, feed }
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, timeoutMs, pred, stepMs = 50) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = await pred();
        if (v) return v;
        if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(stepMs);
    }
}

function withTimeout(what, ms, promise) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

function client() {
    if (!state.client) throw new Error("not logged in");
    return state.client;
}

function record(dir, type, content, extra) {
    state.events.push({ dir, type, ts: Date.now(), ...extra, content });
}

// ---- remote media: every remote feed's stream plays in a <video> element ----

function remoteFeedsNow() {
    if (state.groupCall) {
        return [...state.groupCall.userMediaFeeds, ...state.groupCall.screenshareFeeds].filter((f) => !f.isLocal());
    }
    if (state.call) return state.call.getRemoteFeeds();
    return [];
}

function syncMedia() {
    const feeds = remoteFeedsNow();
    const live = new Set();
    for (const feed of feeds) {
        const id = feed.stream.id;
        live.add(id);
        let entry = state.media.get(id);
        if (!entry) {
            const el = document.createElement("video");
            el.autoplay = true;
            el.playsInline = true;
            el.muted = false;
            el.width = 320;
            el.dataset.user = feed.userId;
            el.dataset.device = feed.deviceId ?? "";
            el.dataset.stream = id;
            document.getElementById("remote").appendChild(el);
            entry = { el, feed };
            state.media.set(id, entry);
        }
        entry.feed = feed;
        if (entry.el.srcObject !== feed.stream) {
            entry.el.srcObject = feed.stream;
            entry.el.play().catch((e) => console.warn(`play() of ${id} failed: ${e}`));
        }
    }
    for (const [id, entry] of state.media) {
        if (!live.has(id)) {
            entry.el.srcObject = null;
            entry.el.remove();
            state.media.delete(id);
        }
    }
}

// An analyser on a peer connection's remote audio: sample() adds the current RMS, rms() is
// the window's mean square, rooted.
function listen(pc) {
    const track = pc?.getReceivers().map((r) => r.track).find((t) => t?.kind === "audio");
    if (!track) return { sample() {}, close() {}, rms: () => 0 };
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let sum = 0;
    let n = 0;
    return {
        sample() {
            analyser.getFloatTimeDomainData(buf);
            let e = 0;
            for (const x of buf) e += x * x;
            sum += e / buf.length;
            n += 1;
        },
        close() {
            ctx.close();
        },
        rms: () => (n > 0 ? Math.sqrt(sum / n) : 0),
    };
}

function feedInfo(f) {
    return {
        userId: f.userId,
        deviceId: f.deviceId ?? null,
        purpose: f.purpose,
        audioMuted: f.isAudioMuted(),
        videoMuted: f.isVideoMuted(),
        streamId: f.stream.id,
        audioTracks: f.stream.getAudioTracks().length,
        videoTracks: f.stream.getVideoTracks().length,
    };
}

// The peer connections to measure: one per remote device.
function peerCalls() {
    const out = [];
    if (state.groupCall) {
        for (const [userId, devices] of state.groupCall.calls) {
            for (const [deviceId, call] of devices) out.push({ userId, deviceId, call });
        }
    } else if (state.call) {
        const call = state.call;
        out.push({
            userId: call.getOpponentMember()?.userId ?? call.invitee ?? null,
            deviceId: call.getOpponentDeviceId() ?? call.opponentPartyId ?? null,
            call,
        });
    }
    return out;
}

function callInfo(call) {
    return {
        callId: call.callId,
        state: call.state,
        direction: call.direction ?? null,
        type: call.type,
        hangupReason: call.hangupReason ?? null,
        hangupParty: call.hangupParty ?? null,
        opponentUserId: call.getOpponentMember()?.userId ?? call.invitee ?? null,
        opponentDeviceId: call.getOpponentDeviceId() ?? null,
        opponentSessionId: call.getOpponentSessionId() ?? null,
        opponentPartyId: call.opponentPartyId ?? null,
        groupCallId: call.groupCallId ?? null,
        micMuted: call.isMicrophoneMuted(),
        videoMuted: call.isLocalVideoMuted(),
        iceConnectionState: call.peerConn?.iceConnectionState ?? null,
        connectionState: call.peerConn?.connectionState ?? null,
    };
}

async function statsOf(pc) {
    const inbound = { video: [], audio: [] };
    const codecs = new Map();
    let ts = performance.now();
    if (!pc || pc.signalingState === "closed") return { inbound, codecs, ts };
    const report = await pc.getStats();
    ts = performance.now();
    report.forEach((s) => {
        if (s.type === "codec") codecs.set(s.id, s.mimeType);
        if (s.type === "inbound-rtp" && (s.kind === "video" || s.kind === "audio")) inbound[s.kind].push(s);
    });
    return { inbound, codecs, ts };
}

function sum(list, key) {
    return list.reduce((acc, s) => acc + (s[key] ?? 0), 0);
}

function watchCall(call) {
    call.on(CallEvent.Error, (e) => console.error(`call ${call.callId} error: ${e?.code} ${e?.message ?? e}`));
    call.on(CallEvent.FeedsChanged, () => syncMedia());
    call.on(CallEvent.State, (s, old) => console.log(`call ${call.callId} state ${old} -> ${s}`));
    call.on(CallEvent.Hangup, () => {
        console.log(`call ${call.callId} hung up (${call.hangupReason})`);
        syncMedia();
    });
    // Glare: js-sdk answers the other side's call instead of ours; follow it.
    call.on(CallEvent.Replaced, (next) => {
        console.log(`call ${call.callId} replaced by ${next.callId}`);
        watchCall(next);
        if (state.call === call) state.call = next;
        syncMedia();
    });
}

// ---- the API ----

const visitor = {
    async login({ homeserver, user, password, deviceId, timeoutMs = 20000 }) {
        if (state.client) throw new Error("already logged in");
        const anon = createClient({ baseUrl: homeserver });
        const res = await anon.loginRequest({
            type: "m.login.password",
            identifier: { type: "m.id.user", user },
            password,
            device_id: deviceId,
            initial_device_display_name: `roomd browser visitor ${deviceId ?? ""}`.trim(),
        });
        const c = createClient({
            baseUrl: homeserver,
            accessToken: res.access_token,
            userId: res.user_id,
            deviceId: res.device_id,
            useE2eForGroupCall: false,
            timelineSupport: false,
        });
        state.client = c;
        c.on(CallEventHandlerEvent.Incoming, (call) => {
            if (call.groupCallId) return; // a group call's own; the GroupCall answers those
            console.log(`incoming 1:1 call ${call.callId} from ${call.getOpponentMember()?.userId}`);
            watchCall(call);
            state.incoming.push(call);
        });
        c.on(ClientEvent.ReceivedVoipEvent, (ev) =>
            record("in", ev.getType(), ev.getContent(), {
                sender: ev.getSender(),
                roomId: ev.getRoomId() ?? null,
                toDevice: !ev.getRoomId(),
            }),
        );
        c.on(CallEvent.SendVoipEvent, (ev) =>
            record("out", ev.eventType, ev.content, {
                userId: ev.userId ?? null,
                deviceId: ev.opponentDeviceId ?? null,
                roomId: ev.roomId ?? null,
                toDevice: ev.type === "toDevice",
            }),
        );
        c.on(GroupCallEventHandlerEvent.Incoming, (gc) =>
            console.log(`group call ${gc.groupCallId} seen in ${gc.room.roomId}`),
        );
        const prepared = new Promise((resolve, reject) => {
            const onSync = (s, _prev, data) => {
                if (s === "PREPARED" || s === "SYNCING") {
                    c.off(ClientEvent.Sync, onSync);
                    resolve();
                } else if (s === "ERROR") {
                    console.warn(`sync error: ${data?.error}`);
                }
            };
            c.on(ClientEvent.Sync, onSync);
        });
        await c.startClient({ initialSyncLimit: 20, lazyLoadMembers: false });
        await withTimeout("first sync", timeoutMs, prepared);
        return { userId: res.user_id, deviceId: res.device_id, sessionId: c.getSessionId() };
    },

    async joinRoom({ roomId, timeoutMs = 20000 }) {
        const c = client();
        await c.joinRoom(roomId);
        await until(`membership join in ${roomId}`, timeoutMs, () => c.getRoom(roomId)?.getMyMembership() === "join");
        return { roomId };
    },

    async enterGroupCall({ roomId, video = true, create = true, waitMs = 0, timeoutMs = 20000 }) {
        const c = client();
        if (state.groupCall && state.groupCall.state === GroupCallState.Entered) {
            throw new Error(`already in group call ${state.groupCall.groupCallId}`);
        }
        await withTimeout("room ready for group calls", timeoutMs, c.waitUntilRoomReadyForGroupCalls(roomId));
        let gc = c.getGroupCallForRoom(roomId);
        if (!gc && waitMs > 0) {
            gc = await until("a group call in the room", waitMs, () => c.getGroupCallForRoom(roomId)).catch(
                () => null,
            );
        }
        if (!gc) {
            if (!create) throw new Error(`no group call in ${roomId}`);
            gc = await c.createGroupCall(
                roomId,
                video ? GroupCallType.Video : GroupCallType.Voice,
                false,
                GroupCallIntent.Room,
            );
        }
        if (state.groupCall !== gc) {
            gc.on(GroupCallEvent.UserMediaFeedsChanged, () => syncMedia());
            gc.on(GroupCallEvent.ScreenshareFeedsChanged, () => syncMedia());
            gc.on(GroupCallEvent.Error, (e) => console.error(`group call error: ${e?.code} ${e?.message ?? e}`));
            gc.on(GroupCallEvent.GroupCallStateChanged, (s, old) => console.log(`group call state ${old} -> ${s}`));
            gc.on(GroupCallEvent.CallsChanged, () => console.log(`group call peers: ${describePeers(gc)}`));
        }
        state.groupCall = gc;
        await withTimeout("entering the group call", timeoutMs, gc.enter());
        syncMedia();
        return { groupCallId: gc.groupCallId, roomId, type: gc.type };
    },

    async leaveGroupCall() {
        const gc = state.groupCall;
        if (!gc) throw new Error("no group call");
        gc.leave();
        syncMedia();
        return { groupCallId: gc.groupCallId, state: gc.state };
    },

    async terminateGroupCall() {
        const gc = state.groupCall;
        if (!gc) throw new Error("no group call");
        await gc.terminate();
        state.groupCall = null;
        syncMedia();
        return { groupCallId: gc.groupCallId };
    },

    async placeCall({ roomId, video = true, invitee }) {
        const c = client();
        const call = createNewMatrixCall(c, roomId, invitee ? { invitee } : undefined);
        if (!call) throw new Error("this browser does not support Matrix calls");
        watchCall(call);
        state.call = call;
        if (video) await call.placeVideoCall();
        else await call.placeVoiceCall();
        return { callId: call.callId };
    },

    async answerIncoming({ timeoutMs = 15000, audio = true, video = true } = {}) {
        const call = await until("an incoming 1:1 call", timeoutMs, () => {
            while (state.incoming.length && state.incoming[0].state !== "ringing") state.incoming.shift();
            return state.incoming.shift();
        });
        state.call = call;
        await call.answer(audio, video);
        syncMedia();
        return callInfo(call);
    },

    async hangup() {
        const call = state.call;
        if (!call) throw new Error("no 1:1 call");
        call.hangup("user_hangup", false);
        return callInfo(call);
    },

    async callState() {
        const gc = state.groupCall;
        return {
            call: state.call ? callInfo(state.call) : null,
            ringing: state.incoming.map((c) => c.callId),
            groupCall: gc
                ? {
                      groupCallId: gc.groupCallId,
                      state: gc.state,
                      micMuted: gc.isMicrophoneMuted(),
                      videoMuted: gc.isLocalVideoMuted(),
                      peers: peerCalls().map(({ call }) => callInfo(call)),
                  }
                : null,
        };
    },

    async setMicMuted(muted) {
        const m = typeof muted === "object" ? muted.muted : muted;
        if (state.groupCall && state.groupCall.state === GroupCallState.Entered) {
            return await state.groupCall.setMicrophoneMuted(m);
        }
        if (state.call) return await state.call.setMicrophoneMuted(m);
        throw new Error("no call to mute");
    },

    async setVideoMuted(muted) {
        const m = typeof muted === "object" ? muted.muted : muted;
        if (state.groupCall && state.groupCall.state === GroupCallState.Entered) {
            return await state.groupCall.setLocalVideoMuted(m);
        }
        if (state.call) return await state.call.setLocalVideoMuted(m);
        throw new Error("no call to mute");
    },

    async remoteFeeds() {
        syncMedia();
        return remoteFeedsNow().map(feedInfo);
    },

    async measure({ windowMs = 5000 } = {}) {
        syncMedia();
        const peers = peerCalls();
        const before = await Promise.all(peers.map((p) => statsOf(p.call.peerConn)));
        // What is heard, sampled from each remote audio track itself: Chromium's
        // totalAudioEnergy stays 0 for some senders whose audio is plainly there.
        const heard = peers.map((p) => listen(p.call.peerConn));
        const until = Date.now() + windowMs;
        while (Date.now() < until) {
            await sleep(50);
            heard.forEach((h) => h.sample());
        }
        heard.forEach((h) => h.close());
        const after = await Promise.all(peers.map((p) => statsOf(p.call.peerConn)));
        return peers.map((p, i) => {
            const a = before[i];
            const b = after[i];
            const secs = Math.max((b.ts - a.ts) / 1000, 0.001);
            const v0 = a.inbound.video;
            const v1 = b.inbound.video;
            const au0 = a.inbound.audio;
            const au1 = b.inbound.audio;
            const framesDecoded = sum(v1, "framesDecoded") - sum(v0, "framesDecoded");
            const energy = sum(au1, "totalAudioEnergy") - sum(au0, "totalAudioEnergy");
            const duration = sum(au1, "totalSamplesDuration") - sum(au0, "totalSamplesDuration");
            const vs = v1.find((s) => s.framesDecoded > 0) ?? v1[0];
            const as = au1[0];
            return {
                userId: p.userId,
                deviceId: p.deviceId,
                callId: p.call.callId,
                callState: p.call.state,
                windowMs: Math.round(secs * 1000),
                fps: framesDecoded / secs,
                framesDecoded,
                frameWidth: vs?.frameWidth ?? 0,
                frameHeight: vs?.frameHeight ?? 0,
                codec: vs ? (b.codecs.get(vs.codecId) ?? null) : null,
                videoPackets: sum(v1, "packetsReceived") - sum(v0, "packetsReceived"),
                // RMS level over the window (0..1): the larger of what the receiver's
                // statistics report and what an analyser on the played track measures
                audioLevel: Math.max(heard[i].rms(), duration > 0 ? Math.sqrt(energy / duration) : 0),
                heardAudioLevel: heard[i].rms(),
                statsAudioLevel: duration > 0 ? Math.sqrt(energy / duration) : 0,
                audioLevelNow: as?.audioLevel ?? 0,
                audioCodec: as ? (b.codecs.get(as.codecId) ?? null) : null,
                audioPackets: sum(au1, "packetsReceived") - sum(au0, "packetsReceived"),
            };
        });
    },

    // When (ms since the Unix epoch) the first video frame from `userId` was decoded, polled
    // every 20 ms: for join-time benchmarks, compared with stamps taken outside the page.
    async firstFrame({ userId, timeoutMs = 30000 }) {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
            for (const p of peerCalls()) {
                if (p.userId !== userId) continue;
                const { inbound } = await statsOf(p.call.peerConn);
                if (sum(inbound.video, "framesDecoded") > 0) return { atMs: Date.now() };
            }
            await sleep(20);
        }
        throw new Error(`no video frame from ${userId} decoded within ${timeoutMs} ms`);
    },

    async snapshot({ userId, deviceId } = {}) {
        syncMedia();
        const entry = [...state.media.values()].find(
            (e) => (!userId || e.feed.userId === userId) && (!deviceId || e.feed.deviceId === deviceId),
        );
        if (!entry) throw new Error(`no remote video of ${userId ?? "anyone"}`);
        const el = entry.el;
        await until("a decoded frame", 5000, () => el.videoWidth > 0 && el.readyState >= 2);
        const canvas = document.createElement("canvas");
        canvas.width = el.videoWidth;
        canvas.height = el.videoHeight;
        canvas.getContext("2d").drawImage(el, 0, 0);
        return { width: canvas.width, height: canvas.height, dataUrl: canvas.toDataURL("image/png") };
    },

    async sendToDevice({ type, userId, deviceId, content }) {
        await client().sendToDevice(type, new Map([[userId, new Map([[deviceId, content]])]]));
        return true;
    },

    async info() {
        const c = client();
        const gc = state.groupCall;
        const participants = [];
        if (gc) {
            for (const [member, devices] of gc.participants) {
                for (const [deviceId, p] of devices) {
                    participants.push({ userId: member.userId, deviceId, sessionId: p.sessionId, screensharing: p.screensharing });
                }
            }
        }
        return {
            userId: c.getUserId(),
            deviceId: c.getDeviceId(),
            sessionId: c.getSessionId(),
            syncState: c.getSyncState(),
            groupCallId: gc?.groupCallId ?? null,
            groupCallState: gc?.state ?? null,
            participants,
        };
    },

    async callEvents({ since = 0 } = {}) {
        return state.events.slice(since);
    },

    async logout() {
        const c = client();
        if (state.groupCall?.state === GroupCallState.Entered) state.groupCall.leave();
        state.call?.hangup("user_hangup", false);
        c.stopClient();
        state.client = null;
        return true;
    },
};

function describePeers(gc) {
    const out = [];
    for (const [userId, devices] of gc.calls) {
        for (const [deviceId, call] of devices) out.push(`${userId}/${deviceId}:${call.state}`);
    }
    return out.join(", ") || "none";
}

window.visitor = visitor;
window.visitorState = state;

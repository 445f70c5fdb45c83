// roomd's LiveKit visitor: the real livekit-client (the version Element Call bundles) in a real
// Chromium. Bundled by esbuild into dist/livekit.bundle.js; driver.mjs (with `--bundle livekit`)
// calls `window.visitor.<cmd>(args)`. A page of its own, apart from page.js, so that
// livekit-client's WebRTC shims never touch the matrix-js-sdk visitor.

import {
    ConnectionState,
    Room,
    RoomEvent,
    Track,
    VideoPresets,
    createLocalTracks,
    version as livekitVersion,
} from "livekit-client";

const state = {
    room: null,
    events: [], // {ts, type, ...}
    local: [], // LocalTrack
    elements: new Map(), // track sid -> media element
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function record(type, extra = {}) {
    state.events.push({ ts: Date.now(), type, ...extra });
    if (state.events.length > 2000) state.events.shift();
}

function room() {
    if (!state.room) throw new Error("not connected");
    return state.room;
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

async function postJson(url, body, headers = {}) {
    const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
        json = JSON.parse(text);
    } catch {}
    if (!res.ok) throw new Error(`POST ${url}: ${res.status} ${text}`);
    return json;
}

// Remote media plays in elements, as a call UI would: video 480x270 (so adaptiveStream sees it
// visible and asks for a layer of about that size), audio in <audio>.
function attach(track, publication, participant) {
    const el = track.attach();
    el.dataset.identity = participant.identity;
    el.dataset.trackSid = publication.trackSid;
    if (track.kind === Track.Kind.Video) {
        el.style.width = "480px";
        el.style.height = "270px";
        el.muted = true;
    }
    document.getElementById("remote").appendChild(el);
    state.elements.set(publication.trackSid, el);
}

function detach(track, publication) {
    for (const el of track.detach()) el.remove();
    state.elements.delete(publication.trackSid);
}

function watch(r) {
    r.on(RoomEvent.ParticipantConnected, (p) => record("participantConnected", { identity: p.identity }))
        .on(RoomEvent.ParticipantDisconnected, (p) => record("participantDisconnected", { identity: p.identity }))
        .on(RoomEvent.TrackSubscribed, (track, pub, p) => {
            record("trackSubscribed", { identity: p.identity, trackSid: pub.trackSid, kind: track.kind });
            attach(track, pub, p);
        })
        .on(RoomEvent.TrackUnsubscribed, (track, pub, p) => {
            record("trackUnsubscribed", { identity: p.identity, trackSid: pub.trackSid, kind: track.kind });
            detach(track, pub);
        })
        .on(RoomEvent.TrackSubscriptionFailed, (sid, p, reason) =>
            record("trackSubscriptionFailed", { identity: p?.identity, trackSid: sid, reason: String(reason) }),
        )
        .on(RoomEvent.TrackMuted, (pub, p) => record("trackMuted", { identity: p.identity, trackSid: pub.trackSid }))
        .on(RoomEvent.TrackUnmuted, (pub, p) =>
            record("trackUnmuted", { identity: p.identity, trackSid: pub.trackSid }),
        )
        .on(RoomEvent.Disconnected, (reason) => record("disconnected", { reason }))
        .on(RoomEvent.Reconnecting, () => record("reconnecting"))
        .on(RoomEvent.Reconnected, () => record("reconnected"))
        .on(RoomEvent.EncryptionError, (e) => record("encryptionError", { error: String(e) }))
        .on(RoomEvent.MediaDevicesError, (e) => record("mediaDevicesError", { error: String(e) }));
}

// An analyser on the received track itself: what a listener would hear.
function listen(mediaStreamTrack) {
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    ctx.createMediaStreamSource(new MediaStream([mediaStreamTrack])).connect(analyser);
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

async function inboundStats(track) {
    const receiver = track?.receiver;
    if (!receiver) return { inbound: null, codec: null, ts: performance.now() };
    const report = await receiver.getStats();
    let inbound = null;
    const codecs = new Map();
    report.forEach((s) => {
        if (s.type === "inbound-rtp") inbound = s;
        if (s.type === "codec") codecs.set(s.id, s.mimeType);
    });
    return { inbound, codec: inbound ? (codecs.get(inbound.codecId) ?? null) : null, ts: performance.now() };
}

function remotePublications() {
    const out = [];
    if (!state.room) return out;
    for (const p of state.room.remoteParticipants.values()) {
        for (const pub of p.trackPublications.values()) out.push({ participant: p, pub });
    }
    return out;
}

const visitor = {
    version() {
        return { livekitClient: livekitVersion };
    },

    // What Element Call does to get its SFU: an OpenID token from the homeserver, exchanged at
    // the token service (lk-jwt-service) for {url, jwt}. `endpoint`: "sfu/get" (legacy, what
    // EC uses for its own connection) or "get_token" (MatrixRTC 2.0).
    async fetchToken({ homeserver, accessToken, userId, deviceId, serviceUrl, roomId, endpoint = "sfu/get", memberId }) {
        const openid = await postJson(
            `${homeserver}/_matrix/client/v3/user/${encodeURIComponent(userId)}/openid/request_token`,
            {},
            { authorization: `Bearer ${accessToken}` },
        );
        const base = serviceUrl.replace(/\/$/, "");
        const body =
            endpoint === "get_token"
                ? {
                      room_id: roomId,
                      slot_id: "m.call#ROOM",
                      openid_token: openid,
                      member: {
                          id: memberId ?? `${userId}:${deviceId}`,
                          claimed_user_id: userId,
                          claimed_device_id: deviceId,
                      },
                  }
                : { room: roomId, openid_token: openid, device_id: deviceId };
        const res = await postJson(`${base}/${endpoint}`, body);
        if (!res?.url || !res?.jwt) throw new Error(`token service answered ${JSON.stringify(res)}`);
        const claims = JSON.parse(atob(res.jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
        return { url: res.url, jwt: res.jwt, identity: claims.sub, room: claims.video?.room };
    },

    // Options as Element Call sets them (adaptiveStream, dynacast) unless told otherwise.
    async connect({ url, token, adaptiveStream = true, dynacast = true, timeoutMs = 20000 }) {
        if (state.room) throw new Error("already connected");
        const r = new Room({ adaptiveStream, dynacast });
        watch(r);
        state.room = r;
        await withTimeout("room.connect", timeoutMs, r.connect(url, token, { autoSubscribe: true }));
        record("connected");
        return visitor.info();
    },

    info() {
        const r = state.room;
        if (!r) return { state: "none" };
        return {
            state: r.state,
            roomName: r.name,
            identity: r.localParticipant.identity,
            sid: r.localParticipant.sid,
            serverVersion: r.serverInfo?.version ?? null,
            serverProtocol: r.serverInfo?.protocol ?? null,
            remoteParticipants: [...r.remoteParticipants.values()].map((p) => ({ identity: p.identity, sid: p.sid })),
            published: [...r.localParticipant.trackPublications.values()].map((p) => ({
                trackSid: p.trackSid,
                kind: p.kind,
                source: p.source,
                muted: p.isMuted,
                mimeType: p.mimeType ?? null,
            })),
        };
    },

    // Camera and microphone (Chromium's fake devices), published like Element Call does:
    // simulcast, VP8 unless `videoCodec` says otherwise, RED off.
    async publish({ video = true, audio = true, videoCodec = "vp8", simulcast = true, width = 640, height = 360, timeoutMs = 20000 } = {}) {
        const r = room();
        const tracks = await createLocalTracks({
            audio,
            video: video ? { resolution: { width, height, frameRate: 30 } } : false,
        });
        for (const t of tracks) {
            const opts =
                t.kind === Track.Kind.Video
                    ? { videoCodec, simulcast, videoSimulcastLayers: [VideoPresets.h180, VideoPresets.h360] }
                    : { red: false, dtx: true };
            await withTimeout(`publishing ${t.kind}`, timeoutMs, r.localParticipant.publishTrack(t, opts));
            state.local.push(t);
        }
        return visitor.info().published;
    },

    async setMicMuted({ muted }) {
        await room().localParticipant.setMicrophoneEnabled(!muted);
        return true;
    },

    async setCameraMuted({ muted }) {
        await room().localParticipant.setCameraEnabled(!muted);
        return true;
    },

    // Every remote publication as this client sees it.
    remoteTracks() {
        return remotePublications().map(({ participant, pub }) => ({
            identity: participant.identity,
            participantSid: participant.sid,
            trackSid: pub.trackSid,
            kind: pub.kind,
            source: pub.source,
            muted: pub.isMuted,
            subscribed: pub.isSubscribed,
            mimeType: pub.mimeType ?? null,
            simulcasted: pub.simulcasted ?? null,
            encryption: pub.encryptionType ?? null,
        }));
    },

    // Per subscribed remote track, over `windowMs`: video frames decoded (and per second),
    // frame size and codec from the receiver's stats; audio RMS level from an analyser on the
    // received track, and from the receiver's totalAudioEnergy.
    async measure({ windowMs = 3000 } = {}) {
        const subs = remotePublications().filter(({ pub }) => pub.isSubscribed && pub.track);
        const before = await Promise.all(subs.map(({ pub }) => inboundStats(pub.track)));
        const heard = subs.map(({ pub }) => (pub.kind === Track.Kind.Audio ? listen(pub.track.mediaStreamTrack) : null));
        const until = Date.now() + windowMs;
        while (Date.now() < until) {
            await sleep(50);
            heard.forEach((h) => h?.sample());
        }
        heard.forEach((h) => h?.close());
        const after = await Promise.all(subs.map(({ pub }) => inboundStats(pub.track)));
        return subs.map(({ participant, pub }, i) => {
            const a = before[i].inbound ?? {};
            const b = after[i].inbound ?? {};
            const secs = Math.max((after[i].ts - before[i].ts) / 1000, 0.001);
            const frames = (b.framesDecoded ?? 0) - (a.framesDecoded ?? 0);
            const energy = (b.totalAudioEnergy ?? 0) - (a.totalAudioEnergy ?? 0);
            const duration = (b.totalSamplesDuration ?? 0) - (a.totalSamplesDuration ?? 0);
            return {
                identity: participant.identity,
                trackSid: pub.trackSid,
                kind: pub.kind,
                muted: pub.isMuted,
                windowMs: Math.round(secs * 1000),
                framesDecoded: frames,
                framesDecodedTotal: b.framesDecoded ?? 0,
                fps: frames / secs,
                frameWidth: b.frameWidth ?? 0,
                frameHeight: b.frameHeight ?? 0,
                codec: after[i].codec,
                packets: (b.packetsReceived ?? 0) - (a.packetsReceived ?? 0),
                audioLevel: heard[i]?.rms() ?? 0,
                statsAudioLevel: duration > 0 ? Math.sqrt(energy / duration) : 0,
            };
        });
    },

    events({ since = 0 } = {}) {
        return state.events.slice(since);
    },

    async leave() {
        if (!state.room) return false;
        await state.room.disconnect();
        for (const t of state.local) t.stop();
        state.local = [];
        state.room = null;
        return true;
    },

    connectionState() {
        return state.room?.state ?? ConnectionState.Disconnected;
    },
};

window.visitor = visitor;
window.visitorState = state;

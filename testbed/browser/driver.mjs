#!/usr/bin/env node
// roomd's browser visitor driver: one headless Chromium with one page running matrix-js-sdk
// (dist/page.bundle.js, built by `bash tools/setup.sh`), driven over JSON lines.
//
//   stdin:  {"id":N,"cmd":"login","args":{...}}      one command a line; commands may overlap
//   stdout: {"id":N,"ok":result} | {"id":N,"error":"..."}
//           and first of all {"event":"ready","pid":..,"chromiumPid":..,"url":..}
//   stderr: the page's console and the driver's own notes, each line prefixed with [name]
//
// Chromium is started by this process (not detached), so it stays in this process's process
// group, and under `setpriv --pdeathsig KILL` so it dies with this process even when this process
// is killed outright. It is closed on stdin EOF, SIGTERM, SIGINT and SIGHUP.
//
// Options: --name NAME (log prefix), --chromium PATH (default $CHROMIUM or /usr/bin/chromium),
// --extra-arg ARG (repeatable; one more Chromium flag), --bundle NAME (the page script,
// dist/NAME.bundle.js: "page", the matrix-js-sdk visitor, by default; "livekit" for
// livekit-client). Environment: ROOMD_BROWSER_VERBOSE=1 keeps
// js-sdk's /sync request lines, ROOMD_BROWSER_CHROMIUM_LOG=1 passes Chromium's own stderr on.
//
// Driver commands besides window.visitor's: "ping", and "eval" ({expression}: a JS expression
// evaluated in the page, awaited if it is a promise; `window.visitorState` holds the js-sdk
// client, group call and 1:1 call).

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const opts = { name: "browser", chromium: process.env.CHROMIUM || "/usr/bin/chromium", extra: [], bundle: "page" };
for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a === "--name") opts.name = process.argv[++i];
    else if (a === "--chromium") opts.chromium = process.argv[++i];
    else if (a === "--extra-arg") opts.extra.push(process.argv[++i]);
    else if (a === "--bundle") opts.bundle = process.argv[++i];
    else fail(`unknown argument ${a}`);
}

function note(line) {
    for (const l of String(line).split("\n")) process.stderr.write(`[${opts.name}] ${l}\n`);
}

function fail(msg) {
    note(`driver: ${msg}`);
    process.exit(2);
}

function send(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

if (!/^[a-z]+$/.test(opts.bundle)) fail(`bad bundle name ${opts.bundle}`);
const bundleName = `${opts.bundle}.bundle.js`;
const bundle = path.join(here, "dist", bundleName);
if (!fs.existsSync(bundle)) fail(`${bundle} is missing: run \`bash tools/setup.sh\``);
if (!fs.existsSync(opts.chromium)) fail(`${opts.chromium} is missing: run \`bash tools/setup.sh\` (Debian package chromium)`);

// ---- the page, from 127.0.0.1 (a secure context, so getUserMedia works) ----

const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>roomd browser visitor ${opts.name}</title></head>
<body><div id="remote"></div><script type="module" src="/${bundleName}"></script></body></html>`;

const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
        res.end(html);
    } else if (url.pathname === `/${bundleName}`) {
        res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
        fs.createReadStream(bundle).pipe(res);
    } else if (url.pathname === "/favicon.ico") {
        res.writeHead(204);
        res.end();
    } else {
        res.writeHead(404);
        res.end();
    }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

// ---- Chromium ----

// A fresh profile named after this process; those left by drivers killed outright go first.
for (const name of fs.readdirSync(os.tmpdir())) {
    const m = name.match(/^roomd-chromium-(\d+)-/);
    if (!m) continue;
    let alive = false;
    try {
        alive = fs.readFileSync(`/proc/${m[1]}/cmdline`, "utf8").includes("driver.mjs");
    } catch {}
    if (!alive) fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
}
const profile = fs.mkdtempSync(path.join(os.tmpdir(), `roomd-chromium-${process.pid}-`));
const flags = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    `--user-data-dir=${profile}`,
    "--remote-debugging-port=0",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    ...opts.extra,
    "about:blank",
];
const haveSetpriv = spawnSync("setpriv", ["--help"], { stdio: "ignore" }).status === 0;
const [cmd, args] = haveSetpriv
    ? ["setpriv", ["--pdeathsig", "KILL", "--", opts.chromium, ...flags]]
    : [opts.chromium, flags];
// Chromium's crash handler keeps its database under $XDG_CONFIG_HOME: keep it in the profile too.
const env = { ...process.env, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: path.join(profile, "cache") };
const proc = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], detached: false, env });

// The processes Chromium started (zygotes, renderers, crash handlers) all name the profile.
function leftovers() {
    const pids = [];
    for (const pid of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        try {
            const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
            const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
            const zombie = / Z /.test(stat.slice(stat.lastIndexOf(")")));
            if (!zombie && cmdline.includes(profile)) pids.push(Number(pid));
        } catch {}
    }
    return pids;
}

let closing = false;
let browser = null;

async function shutdown(code) {
    if (closing) return;
    closing = true;
    const timer = setTimeout(() => {
        try {
            proc.kill("SIGKILL");
        } catch {}
    }, 3000);
    try {
        if (browser) await browser.close().catch(() => {});
    } finally {
        if (proc.exitCode === null && proc.signalCode === null) {
            proc.kill("SIGTERM");
            await new Promise((r) => {
                const t = setTimeout(() => {
                    try {
                        proc.kill("SIGKILL");
                    } catch {}
                    r();
                }, 2000);
                proc.once("exit", () => {
                    clearTimeout(t);
                    r();
                });
            });
        }
        clearTimeout(timer);
        // Wait (briefly) for Chromium's children to go, then make sure they have.
        for (let i = 0; i < 30 && leftovers().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
        for (const pid of leftovers()) {
            note(`driver: killing leftover chromium process ${pid}`);
            try {
                process.kill(pid, "SIGKILL");
            } catch {}
        }
        server.close();
        fs.rmSync(profile, { recursive: true, force: true });
        process.exit(code);
    }
}

for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(sig, () => shutdown(0));
proc.on("exit", (code, signal) => {
    if (!closing) {
        note(`driver: chromium exited unexpectedly (code ${code}, signal ${signal})`);
        shutdown(3);
    }
});

const wsEndpoint = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("chromium did not print its DevTools endpoint within 30 s")), 30000);
    const rl = readline.createInterface({ input: proc.stderr });
    rl.on("line", (line) => {
        const m = line.match(/DevTools listening on (ws:\/\/\S+)/);
        if (m) {
            clearTimeout(timer);
            resolve(m[1]);
        } else if (process.env.ROOMD_BROWSER_CHROMIUM_LOG) {
            note(`chromium: ${line}`);
        }
    });
    proc.on("exit", () => reject(new Error("chromium exited before it was ready")));
}).catch((e) => {
    note(`driver: ${e.message}`);
    return shutdown(4);
});

let page;
try {
    browser = await chromium.connectOverCDP(wsEndpoint, { timeout: 30000 });
    const context = browser.contexts()[0] ?? (await browser.newContext());
    page = context.pages()[0] ?? (await context.newPage());
    // js-sdk logs every /sync long-poll at debug level: noise unless asked for.
    const verbose = Boolean(process.env.ROOMD_BROWSER_VERBOSE);
    page.on("console", (msg) => {
        const text = msg.text();
        if (!verbose && /FetchHttpApi: (-->|<--) GET \S+\/sync\?/.test(text)) return;
        note(`${msg.type()}: ${text}`);
    });
    page.on("pageerror", (err) => note(`pageerror: ${err.stack ?? err}`));
    page.on("crash", () => note("page crashed"));
    await page.goto(pageUrl, { timeout: 30000 });
    await page.waitForFunction(() => typeof window.visitor === "object", null, { timeout: 30000 });
} catch (e) {
    note(`driver: starting the page failed: ${e.message}`);
    await shutdown(5);
}

send({ event: "ready", pid: process.pid, chromiumPid: proc.pid, url: pageUrl });

// ---- commands ----

async function run(cmd, args) {
    if (cmd === "ping") return "pong";
    if (cmd === "eval") return (await page.evaluate(String(args?.expression))) ?? null;
    const ok = await page.evaluate(
        async ([cmd, args]) => {
            const f = window.visitor[cmd];
            if (typeof f !== "function") throw new Error(`unknown command ${cmd}`);
            return await f(args);
        },
        [cmd, args ?? {}],
    );
    return ok === undefined ? null : ok;
}

const pending = new Set();
const input = readline.createInterface({ input: process.stdin });
input.on("line", (line) => {
    const p = handle(line);
    pending.add(p);
    p.finally(() => pending.delete(p));
});
// On EOF, let commands already sent finish (for up to 5 s), then close the browser.
input.on("close", async () => {
    await Promise.race([Promise.allSettled([...pending]), new Promise((r) => setTimeout(r, 5000))]);
    await shutdown(0);
});

async function handle(line) {
    if (!line.trim()) return;
    let msg;
    try {
        msg = JSON.parse(line);
    } catch (e) {
        send({ id: null, error: `not JSON: ${e.message}` });
        return;
    }
    try {
        send({ id: msg.id, ok: await run(msg.cmd, msg.args) });
    } catch (e) {
        // playwright wraps page errors as "page.evaluate: Error: ..."; keep the message short
        const text = String(e?.message ?? e).replace(/^page\.evaluate: /, "").split("\n")[0];
        send({ id: msg.id, error: text });
    }
}

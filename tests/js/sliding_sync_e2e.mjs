// End-to-end test of Simplified Sliding Sync (MSC4186) with a real client: matrix-js-sdk's
// MatrixClient, its SlidingSync class (POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync)
// and its Rust crypto, for two users in an encrypted room.
//
// Usage: node sliding_sync_e2e.mjs BASE_URL USER_A USER_B PASSWORD
// (both users exist with PASSWORD; every run logs in new devices, so users can be reused).
//
// Run by tests/interop/test_js_sliding_sync.py against Moot and against Synapse, so that a
// difference between the two shows which server is wrong. The script waits on the client's own
// events (each wait bounded by a timeout that only serves to fail), never sleeps to synchronize.
// stdout carries one line, `E2E-RESULT {json}`; the SDK's logs go to stderr. On a failed
// expectation it prints `E2E-FAILURE {json}` (the step, the expectation, and each client's last
// request/response pairs as evidence) and exits 1. With E2E_DUMP=FILE set, every response each
// client processed is written to FILE as well, pass or fail.

import { writeFileSync } from "node:fs";

import * as sdk from "matrix-js-sdk";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";

import { login, main } from "./script.mjs";
import { expect, Waits } from "./wait.mjs";

const LONG_POLL_MS = 3_000; // the server's long-poll timeout; bounds waits on unannounced changes
const EVIDENCE_EXCHANGES = 12;
const LIST = "all";
const REQUIRED_STATE = [
    ["m.room.create", ""],
    ["m.room.name", ""],
    ["m.room.encryption", ""],
    ["m.room.member", "$ME"],
    ["m.room.member", "$LAZY"],
];
const ENCRYPTION = { algorithm: "m.megolm.v1.aes-sha2" };
const PING_TYPE = "org.example.moot.sliding_sync_ping";

/** A logged-in device syncing through SlidingSync, recording every exchange and response. */
class Device {
    constructor(label, baseUrl, login) {
        this.label = label;
        this.userId = login.user_id;
        this.deviceId = login.device_id;
        this.exchanges = []; // {query, body, response | error}: evidence for a failure report
        this.errors = []; // every failed sliding sync request's error
        this.responses = []; // every response the SlidingSync class processed, in order
        this.waits = new Waits(label);
        this.client = sdk.createClient({
            baseUrl,
            userId: login.user_id,
            deviceId: login.device_id,
            accessToken: login.access_token,
        });
        this.recordExchanges();
        this.slidingSync = new SlidingSync(
            baseUrl,
            new Map([[LIST, { ranges: [[0, 19]], timeline_limit: 10, required_state: REQUIRED_STATE }]]),
            { timeline_limit: 10, required_state: REQUIRED_STATE },
            this.client,
            LONG_POLL_MS,
        );
        this.slidingSync.on(SlidingSyncEvent.Lifecycle, (state, resp) => {
            if (state === SlidingSyncState.Complete && resp) {
                this.responses.push(resp);
                this.recheck();
            }
        });
        this.client.on(sdk.MatrixEventEvent.Decrypted, () => this.recheck());
    }

    /** Wraps the client's one sliding-sync request so that each request and answer is kept. */
    recordExchanges() {
        const send = this.client.slidingSync.bind(this.client);
        this.client.slidingSync = async (req, proxyBaseUrl, abortSignal) => {
            // As sent: the SDK moves pos and timeout into the query string, the rest is the body.
            const { pos, timeout, clientTimeout, ...body } = structuredClone(req);
            const entry = { query: { pos, timeout }, body };
            this.exchanges.push(entry);
            if (this.exchanges.length > EVIDENCE_EXCHANGES) this.exchanges.shift();
            try {
                entry.response = await send(req, proxyBaseUrl, abortSignal);
                return entry.response;
            } catch (err) {
                entry.error = { name: err.name, httpStatus: err.httpStatus, data: err.data };
                this.errors.push(entry.error);
                throw err;
            }
        };
    }

    async start() {
        await this.client.initRustCrypto({ useIndexedDB: false });
        const started = this.next(`${this.label}'s first sliding sync response`, () => true);
        await this.client.startClient({ slidingSync: this.slidingSync });
        return started;
    }

    stop() {
        this.client.stopClient();
        this.slidingSync.stop();
    }

    /** How many responses so far: a mark from which `response` looks. */
    mark() {
        return this.responses.length;
    }

    recheck() {
        this.waits.recheck();
    }

    /** The first response from `since` on (already in or still to come) that `matches`. */
    response(since, description, matches) {
        return this.until(description, () => this.responses.slice(since).find(matches));
    }

    /** The first response after this call that `matches`. */
    next(description, matches) {
        return this.response(this.mark(), description, matches);
    }

    /** `check()`'s first truthy value, re-checked after every response and every decryption
     * (wait.mjs). */
    until(description, check, explain) {
        return this.waits.until(description, check, explain);
    }

    /** Every to-device event of `type` in this device's responses, in order. */
    toDeviceEvents(type) {
        return this.responses.flatMap((r) => r.extensions?.to_device?.events ?? []).filter((e) => e.type === type);
    }
}

const DEVICE_NAME = "js-sdk sliding sync e2e";
const devices = []; // every device the run logged in, for the evidence and the dump

const roomOf = (resp, roomId) => resp.rooms?.[roomId];
const count = (resp) => resp.lists?.[LIST]?.count;
const membershipEvent = (events, userId, membership) =>
    (events ?? []).find(
        (e) => e.type === "m.room.member" && e.state_key === userId && e.content?.membership === membership,
    );

async function run(baseUrl, userA, userB, password, step) {
    const versions = await (await fetch(`${baseUrl}/_matrix/client/versions`)).json();
    const advertised = versions.unstable_features?.["org.matrix.simplified_msc3575"] === true;

    const a = new Device("A", baseUrl, await login(baseUrl, userA, password, DEVICE_NAME));
    const b = new Device("B", baseUrl, await login(baseUrl, userB, password, DEVICE_NAME));
    devices.push(a, b);

    await step("both clients sync", async () => {
        const [first] = await Promise.all([a.start(), b.start()]);
        expect(typeof first.pos === "string" && first.pos !== "", "a response carries a pos", first.pos);
        expect(count(first) === 0, "a new user's list is empty", first.lists);
    });

    // A waits for B's one-time keys before sending: without them A cannot open an Olm session to
    // B's device, and the room key would never reach it. The count arrives through e2ee.
    await step("B's one-time key count through the e2ee extension", () =>
        b.response(0, "device_one_time_keys_count.signed_curve25519 > 0 in e2ee", (r) =>
            r.extensions?.e2ee?.device_one_time_keys_count?.signed_curve25519 > 0,
        ),
    );

    let roomId;
    await step("B's list shows the invite with invite_state", async () => {
        const bMark = b.mark();
        ({ room_id: roomId } = await a.client.createRoom({
            name: "sliding sync e2e",
            invite: [b.userId],
            initial_state: [{ type: "m.room.encryption", state_key: "", content: ENCRYPTION }],
        }));
        const resp = await b.response(bMark, "invite in B's list", (r) => roomOf(r, roomId)?.invite_state);
        const invite = roomOf(resp, roomId);
        expect(count(resp) === 1, "B's list counts the invited room", resp.lists);
        expect(membershipEvent(invite.invite_state, b.userId, "invite"), "invite_state holds B's invite", invite);
        expect(
            invite.invite_state.some((e) => e.type === "m.room.encryption" && e.content?.algorithm === ENCRYPTION.algorithm),
            "invite_state holds m.room.encryption",
            invite.invite_state,
        );
        await b.until("the invite in B's client", () => b.client.getRoom(roomId)?.getMyMembership() === "invite");
    });

    await step("A's list shows the encrypted room", async () => {
        const resp = await a.response(0, "the room in A's list", (r) =>
            roomOf(r, roomId)?.required_state?.some((e) => e.type === "m.room.encryption"),
        );
        expect(count(resp) === 1, "A's list counts the room", resp.lists);
        // The SDK hands required_state's m.room.encryption to its crypto before the response
        // completes, so A's crypto knows the room is encrypted by now.
        expect(await a.client.getCrypto().isEncryptionEnabledInRoom(roomId), "A's crypto sees the room encrypted");
    });

    await step("B joins and the room turns joined in B's list", async () => {
        const bMark = b.mark();
        const aMark = a.mark();
        await b.client.joinRoom(roomId);
        const resp = await b.response(bMark, "B's join in B's list", (r) =>
            membershipEvent(roomOf(r, roomId)?.timeline, b.userId, "join") ||
            membershipEvent(roomOf(r, roomId)?.required_state, b.userId, "join"),
        );
        expect(count(resp) === 1, "B's list still counts one room", resp.lists);
        expect(
            roomOf(resp, roomId).required_state?.some((e) => e.type === "m.room.encryption"),
            "the joined room's required_state holds m.room.encryption",
            roomOf(resp, roomId),
        );
        await b.until("B joined in B's client", () => b.client.getRoom(roomId)?.getMyMembership() === "join");
        await a.response(aMark, "B's join in A's timeline", (r) =>
            membershipEvent(roomOf(r, roomId)?.timeline, b.userId, "join"),
        );
        // Sharing a room with A now, B must (re)fetch A's devices: A is in device_lists.changed.
        await b.response(bMark, "A in B's e2ee device_lists.changed after the join", (r) =>
            r.extensions?.e2ee?.device_lists?.changed?.includes(a.userId),
        );
    });

    const text = `hello through sliding sync ${Date.now()}`;
    await step("A's encrypted message updates B's list and B decrypts it", async () => {
        const bMark = b.mark();
        const before = [...b.responses].reverse().find((r) => roomOf(r, roomId)?.bump_stamp !== undefined);
        const { event_id: eventId } = await a.client.sendMessage(roomId, { msgtype: "m.text", body: text });
        const resp = await b.response(bMark, "A's message in B's room timeline", (r) =>
            roomOf(r, roomId)?.timeline?.some((e) => e.event_id === eventId),
        );
        const room = roomOf(resp, roomId);
        const sent = room.timeline.find((e) => e.event_id === eventId);
        expect(sent.type === "m.room.encrypted", "the message went out encrypted", sent);
        expect(count(resp) === 1, "B's list still counts one room", resp.lists);
        expect(before, "B's list gave the room a bump_stamp before the message", b.responses);
        expect(
            room.bump_stamp > roomOf(before, roomId).bump_stamp,
            "the message raised the room's bump_stamp",
            { before: roomOf(before, roomId).bump_stamp, after: room.bump_stamp },
        );
        // A first failure to decrypt (the key still on its way) is retried when the key comes.
        const event = () => b.client.getRoom(roomId)?.findEventById(eventId);
        await b.until(
            "B's client decrypting A's message",
            () => event()?.getClearContent()?.body === text,
            () => ({ clear: event()?.getClearContent(), failure: event()?.decryptionFailureReason }),
        );
        // The room key came A -> B as an Olm-encrypted to-device message through to_device.
        const keys = b.toDeviceEvents("m.room.encrypted").filter((e) => e.sender === a.userId);
        expect(keys.length >= 1, "the room key reached B through the to_device extension", b.toDeviceEvents("m.room.encrypted"));
        await a.response(0, "A's message in A's own timeline", (r) =>
            roomOf(r, roomId)?.timeline?.some((e) => e.event_id === eventId),
        );
    });

    await step("to-device: delivered once through to_device", async () => {
        const send = (n) =>
            a.client.sendToDevice(PING_TYPE, new Map([[b.userId, new Map([[b.deviceId, { n }]])]]));
        const received = (n) => (r) => (r.extensions?.to_device?.events ?? []).some((e) => e.type === PING_TYPE && e.content?.n === n);
        await send(1);
        await b.response(0, "to-device ping 1", received(1));
        // A second message: its arrival means the first was acknowledged (`since`) and must not
        // come again.
        await send(2);
        await b.response(0, "to-device ping 2", received(2));
        const pings = b.toDeviceEvents(PING_TYPE);
        expect(
            JSON.stringify(pings.map((e) => e.content.n)) === "[1,2]",
            "each to-device message arrives once, in order",
            pings,
        );
        expect(pings.every((e) => e.sender === a.userId), "to-device sender is A", pings);
    });

    await step("device lists: A's new device in B's e2ee device_lists.changed", async () => {
        const bMark = b.mark();
        const a2 = new Device("A2", baseUrl, await login(baseUrl, userA, password, DEVICE_NAME));
        devices.push(a2);
        await a2.start();
        await b.response(bMark, "A in device_lists.changed", (r) =>
            r.extensions?.e2ee?.device_lists?.changed?.includes(a.userId),
        );
        a2.stop();
    });

    let replacedPosRefused;
    await step("B's client goes on after another connection replaced its own", async () => {
        // A request without pos (another instance of the app, say) starts B's connection over.
        // MSC4186 as Moot serves it then answers B's SlidingSync's older pos with 400
        // M_UNKNOWN_POS, upon which the SDK starts over without pos; Synapse 1.163 still accepts
        // the older pos. Either way the client must go on receiving, and to-device (per device,
        // acknowledged by `since`) must not come twice. Whether the older pos was refused is
        // reported (`replacedPosRefused`) for the caller to judge.
        const fresh = await b.client.slidingSync({
            lists: { [LIST]: { ranges: [[0, 19]], timeline_limit: 1, required_state: [] } },
        });
        expect(count(fresh) === 1 && roomOf(fresh, roomId)?.initial, "a new connection sends the room afresh", fresh);
        // The long-poll in flight during the replacement may still answer (ping 3); the
        // request after it holds the older pos, so ping 4 comes on a request made after it.
        for (const n of [3, 4]) {
            const bMark = b.mark();
            await a.client.sendToDevice(PING_TYPE, new Map([[b.userId, new Map([[b.deviceId, { n }]])]]));
            await b.response(bMark, `to-device ping ${n}`, (r) =>
                (r.extensions?.to_device?.events ?? []).some((e) => e.type === PING_TYPE && e.content?.n === n),
            );
        }
        const pings = b.toDeviceEvents(PING_TYPE).map((e) => e.content.n);
        expect(JSON.stringify(pings) === "[1,2,3,4]", "no to-device message came twice", pings);
        const refusals = b.errors.filter((e) => e.httpStatus === 400);
        expect(
            refusals.every((e) => e.data?.errcode === "M_UNKNOWN_POS"),
            "the only refusal of B's requests is M_UNKNOWN_POS",
            refusals,
        );
        replacedPosRefused = refusals.length > 0;
    });

    await step("B leaves and the room leaves B's list", async () => {
        const bMark = b.mark();
        const aMark = a.mark();
        await b.client.leave(roomId);
        await b.response(bMark, "B's leave in B's room", (r) =>
            membershipEvent(roomOf(r, roomId)?.timeline, b.userId, "leave") ||
            membershipEvent(roomOf(r, roomId)?.required_state, b.userId, "leave"),
        );
        await b.until("B left in B's client", () => b.client.getRoom(roomId)?.getMyMembership() === "leave");
        await a.response(aMark, "B's leave in A's timeline", (r) =>
            membershipEvent(roomOf(r, roomId)?.timeline, b.userId, "leave"),
        );
        // B shares no room with A any more: A is in device_lists.left.
        await b.response(bMark, "A in B's e2ee device_lists.left", (r) =>
            r.extensions?.e2ee?.device_lists?.left?.includes(a.userId),
        );
        // The leave response itself may still list the room (it tells the client of the leave);
        // the next one must not. A to-device message wakes B's connection for it.
        const afterMark = b.mark();
        await a.client.sendToDevice(PING_TYPE, new Map([[b.userId, new Map([[b.deviceId, { n: 5 }]])]]));
        const after = await b.response(afterMark, "to-device ping 5 after the leave", (r) =>
            (r.extensions?.to_device?.events ?? []).some((e) => e.type === PING_TYPE && e.content?.n === 5),
        );
        expect(count(after) === 0 && !roomOf(after, roomId), "the left room is out of B's list", after);
        // A connection started afresh (no pos) does not list it either.
        const fresh = await b.client.slidingSync({
            lists: { [LIST]: { ranges: [[0, 19]], timeline_limit: 1, required_state: [] } },
        });
        expect(count(fresh) === 0 && !roomOf(fresh, roomId), "a new connection's list leaves the room out", fresh);
    });

    a.stop();
    b.stop();
    return { advertised, replacedPosRefused, roomId };
}

const byDevice = (field) => Object.fromEntries(devices.map((d) => [`${d.label} ${d.deviceId}`, d[field]]));
await main("sliding_sync_e2e.mjs", run, {
    evidence: () => ({ exchanges: byDevice("exchanges") }),
    finish: () => {
        if (process.env.E2E_DUMP) writeFileSync(process.env.E2E_DUMP, JSON.stringify(byDevice("responses"), null, 1));
    },
});

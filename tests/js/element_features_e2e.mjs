// End-to-end test of the features Element Web builds on, with a real client: matrix-js-sdk's
// MatrixClient syncing (`/sync`, threads on) for two users.
//
// Usage: node element_features_e2e.mjs BASE_URL USER_A USER_B PASSWORD
// (both users exist with PASSWORD; every run logs in new devices and makes new rooms, so users
// can be reused).
//
// Steps: feature detection from /versions (what the SDK decides to use: threads, their list,
// stable room summary, relations recursion, extended profiles); an extended profile field (m.tz)
// one user sets and the other reads; a thread with replies, read through the root's
// bundled `m.thread` aggregation and through the threads list; an edit and a reaction (the
// edit through the bundled `m.replace` of the original, on /event and in the synced timeline;
// the reaction through /relations, as the spec does not bundle annotations); a space and its
// hierarchy; a room upgrade that B's client follows from the tombstone into the new room.
//
// Run by tests/interop/test_js_element_features.py against Moot and against Synapse, so that a
// difference between the two shows which server is wrong. The script waits on the clients' own
// events (each wait bounded by a timeout that only serves to fail), never sleeps to
// synchronize. stdout carries one line, `E2E-RESULT {json}`; the SDK's logs go to stderr. On a
// failed expectation it prints `E2E-FAILURE {json}` (the step and the expectation) and exits 1.

import * as sdk from "matrix-js-sdk";
import { RoomHierarchy } from "matrix-js-sdk/lib/room-hierarchy.js";

import { login, main } from "./script.mjs";
import { expect, Waits } from "./wait.mjs";

const UPGRADE_FROM = "10";
const UPGRADE_TO = "11";

/** A logged-in client syncing with `/sync`, whose waits are re-checked after every sync, every
 * timeline or state event and every change to a thread. */
class Device {
    constructor(label, baseUrl, login) {
        this.label = label;
        this.userId = login.user_id;
        this.waits = new Waits(label);
        this.client = sdk.createClient({
            baseUrl,
            userId: login.user_id,
            deviceId: login.device_id,
            accessToken: login.access_token,
        });
        const recheck = () => this.waits.recheck();
        this.client.on(sdk.ClientEvent.Sync, recheck);
        this.client.on(sdk.RoomEvent.Timeline, recheck);
        this.client.on(sdk.RoomStateEvent.Events, recheck);
        this.client.on(sdk.RoomEvent.MyMembership, recheck);
        this.client.on(sdk.ClientEvent.Event, recheck);
        // Threads change on their own (replies filed, counts updated after the root's relations
        // are fetched): the room re-emits their events, the client not all of them.
        const threadEvents = [sdk.ThreadEvent.New, sdk.ThreadEvent.Update, sdk.ThreadEvent.NewReply, sdk.RoomEvent.Timeline];
        this.client.on(sdk.ClientEvent.Room, (room) => threadEvents.forEach((event) => room.on(event, recheck)));
    }

    async start() {
        const ready = this.until("the first sync", () => this.client.isInitialSyncComplete());
        await this.client.startClient({ initialSyncLimit: 20, threadSupport: true });
        return ready;
    }

    stop() {
        this.client.stopClient();
    }

    /** `check()`'s first truthy value, re-checked after every sync and event (wait.mjs). */
    until(description, check, explain) {
        return this.waits.until(description, check, explain);
    }

    /** The room, once this client's sync has it with `membership`. */
    room(roomId, membership = "join") {
        return this.until(`room ${roomId} (${membership})`, () => {
            const room = this.client.getRoom(roomId);
            return room?.getMyMembership() === membership ? room : null;
        });
    }
}

const DEVICE_NAME = "js-sdk element features e2e";

const text = (body) => ({ msgtype: "m.text", body });


async function run(baseUrl, userA, userB, password, step) {
    const a = new Device("A", baseUrl, await login(baseUrl, userA, password, DEVICE_NAME));
    const b = new Device("B", baseUrl, await login(baseUrl, userB, password, DEVICE_NAME));
    await Promise.all([a.start(), b.start()]);
    const result = {};

    await step("feature detection from /versions", async () => {
        const versions = await a.client.getVersions();
        result.versions = versions.versions;
        // Threads, their list and forward pagination are Stable from v1.4 on (the SDK reads
        // /versions; `unstable_features` would make them Experimental instead).
        const threads = await a.client.doesServerSupportThread();
        expect(
            threads.threads === sdk.FeatureSupport.Stable && threads.list === sdk.FeatureSupport.Stable &&
                threads.fwdPagination === sdk.FeatureSupport.Stable,
            "threads, their list and forward pagination are stable",
            threads,
        );
        expect(await a.client.isVersionSupported("v1.4"), "v1.4 (threads) is claimed", versions);
        // Relations recursion (v1.10) and the stable room summary (v1.15) are picked by version.
        expect(await a.client.isVersionSupported("v1.10"), "v1.10 (relations recursion) is claimed", versions);
        expect(await a.client.isVersionSupported("v1.15"), "v1.15 (room summary) is claimed", versions);
        // Extended profiles: the SDK uses the stable /v3/profile/{userId}/{keyName} for any key
        // when v1.16 is claimed, or `uk.tcpip.msc4133.stable` announced (Synapse 1.163.2 claims
        // up to v1.15 and announces that). Which of the two is reported: the runner expects
        // v1.16 of Moot.
        expect(await a.client.doesServerSupportExtendedProfiles(), "extended profiles are supported", versions);
        result.v1_16 = await a.client.isVersionSupported("v1.16");
    });

    await step("an extended profile field (m.tz) set by A and read by B", async () => {
        const timeZone = "Europe/Paris";
        await a.client.setExtendedProfileProperty("m.tz", timeZone);
        const read = await b.client.getExtendedProfileProperty(a.userId, "m.tz");
        expect(read === timeZone, "B reads A's m.tz as A set it", read);
        await a.client.deleteExtendedProfileProperty("m.tz");
        // The whole profile, which the SDK never answers from its cache (a single key it does).
        const profile = await b.client.getExtendedProfile(a.userId);
        expect(!("m.tz" in profile), "A's profile has no m.tz once A deleted it", profile);
    });

    // A room both users are in: the thread, the edit and the reaction happen there.
    const { room_id: roomId } = await a.client.createRoom({ preset: "public_chat", name: "js-sdk features" });
    await a.client.invite(roomId, b.userId);
    await b.room(roomId, "invite");
    await b.client.joinRoom(roomId);
    await a.until("B's join in A's room", () => a.client.getRoom(roomId)?.getMember(b.userId)?.membership === "join");

    await step("a thread with replies and the threads list", async () => {
        const { event_id: rootId } = await a.client.sendMessage(roomId, text("thread root"));
        const replyIds = [];
        for (const body of ["first reply", "second reply"]) {
            replyIds.push((await b.client.sendMessage(roomId, rootId, text(body))).event_id);
        }
        // A's client builds the thread from its sync: both replies in it, out of the main timeline.
        const threadOf = () => a.client.getRoom(roomId)?.getThread(rootId);
        await a.until(
            "the thread with both replies in A's client",
            () => threadOf()?.length === 2 && replyIds.every((id) => threadOf().findEventById(id)),
            () => ({
                length: threadOf()?.length,
                events: threadOf()?.events.map((e) => e.getId()),
                threads: a.client.getRoom(roomId)?.getThreads().map((t) => t.id),
                replyIds,
            }),
        );
        const mainTimeline = a.client.getRoom(roomId).getLiveTimeline().getEvents().map((e) => e.getId());
        expect(!replyIds.some((id) => mainTimeline.includes(id)), "the replies are out of A's main timeline");
        // The root as the server serves it: the bundled m.thread aggregation.
        const root = await a.client.fetchRoomEvent(roomId, rootId);
        const bundled = root.unsigned?.["m.relations"]?.["m.thread"];
        expect(bundled?.count === 2, "the root's bundled m.thread counts both replies", root.unsigned);
        expect(bundled.latest_event?.content?.body === "second reply", "latest_event is the last reply", bundled);
        expect(bundled.current_user_participated === true, "A participated by sending the root", bundled);
        // The threads list (GET /threads), as the SDK's thread panel asks for it.
        const list = await a.client.createThreadListMessagesRequest(roomId, null, 20, sdk.Direction.Backward);
        expect(
            list.chunk.map((e) => e.event_id).includes(rootId),
            "the threads list holds the root",
            list.chunk.map((e) => e.event_id),
        );
        const participated = await b.client.createThreadListMessagesRequest(
            roomId, null, 20, sdk.Direction.Backward, sdk.ThreadFilterType.My,
        );
        expect(
            participated.chunk.some((e) => e.event_id === rootId),
            "B participated in the thread",
            participated,
        );
    });

    await step("an edit and a reaction through bundled aggregations", async () => {
        const { event_id: originalId } = await a.client.sendMessage(roomId, text("helo"));
        const { event_id: editId } = await a.client.sendMessage(roomId, {
            ...text("* hello"),
            "m.new_content": text("hello"),
            "m.relates_to": { rel_type: sdk.RelationType.Replace, event_id: originalId },
        });
        const { event_id: reactionId } = await b.client.sendEvent(roomId, sdk.EventType.Reaction, {
            "m.relates_to": { rel_type: sdk.RelationType.Annotation, event_id: originalId, key: "👍" },
        });
        // /event bundles the edit (the latest valid replacement by the original sender)...
        const original = await b.client.fetchRoomEvent(roomId, originalId);
        const replace = original.unsigned?.["m.relations"]?.["m.replace"];
        expect(replace?.event_id === editId, "the original's bundled m.replace is the edit", original.unsigned);
        expect(original.content?.body === "helo", "the original's content is left intact (spec v1.7)", original);
        // ...and reactions are not bundled: the SDK reads them through /relations.
        expect(!original.unsigned?.["m.relations"]?.["m.annotation"], "reactions are not bundled", original.unsigned);
        const reactions = await b.client.relations(roomId, originalId, sdk.RelationType.Annotation, sdk.EventType.Reaction);
        expect(
            reactions.events.map((e) => e.getId()).includes(reactionId),
            "the reaction is in /relations",
            reactions.events.map((e) => e.getId()),
        );
        // B's client shows the edit: the original in its timeline is replaced by it.
        const shown = await b.until("the edit applied in B's timeline", () => {
            const event = b.client.getRoom(roomId)?.findEventById(originalId);
            return event?.replacingEventId() === editId ? event : null;
        });
        expect(shown.getContent().body === "hello", "B's client shows the edited text", shown.getContent());
        // A client that only paginates (no live edit seen): /messages carries the bundle.
        const page = await b.client.createMessagesRequest(roomId, null, 20, sdk.Direction.Backward);
        const paged = page.chunk.find((e) => e.event_id === originalId);
        expect(
            paged?.unsigned?.["m.relations"]?.["m.replace"]?.event_id === editId,
            "/messages bundles the edit on the original",
            paged,
        );
    });

    let spaceId;
    let childId;
    await step("a space and its hierarchy", async () => {
        ({ room_id: spaceId } = await a.client.createRoom({
            preset: "public_chat",
            name: "js-sdk space",
            creation_content: { type: sdk.RoomType.Space },
        }));
        ({ room_id: childId } = await a.client.createRoom({ preset: "public_chat", name: "js-sdk space child" }));
        const via = [a.userId.split(":").slice(1).join(":")];
        await a.client.sendStateEvent(spaceId, sdk.EventType.SpaceChild, { via, suggested: true }, childId);
        const space = await a.room(spaceId);
        expect(space.isSpaceRoom(), "A's client sees a space", space.getType());
        // The SDK's own walker (Element's space home uses it) over GET /hierarchy.
        const hierarchy = new RoomHierarchy(space, 10);
        await hierarchy.load();
        const ids = hierarchy.rooms.map((r) => r.room_id);
        expect(ids.includes(spaceId) && ids.includes(childId), "the hierarchy holds the space and its child", ids);
        const child = hierarchy.rooms.find((r) => r.room_id === childId);
        expect(child.name === "js-sdk space child" && child.num_joined_members === 1, "the child's summary", child);
        const link = hierarchy.rooms.find((r) => r.room_id === spaceId).children_state;
        expect(link.some((e) => e.state_key === childId && e.content.suggested === true), "the space's children_state", link);
        result.hierarchy = ids.length;
    });

    await step("a room upgrade followed by the client", async () => {
        const { room_id: oldId } = await a.client.createRoom({
            preset: "public_chat", name: "js-sdk upgrade", room_version: UPGRADE_FROM,
        });
        await b.client.joinRoom(oldId);
        await a.until("B's join in the room to upgrade", () =>
            a.client.getRoom(oldId)?.getMember(b.userId)?.membership === "join");
        const { replacement_room: newId } = await a.client.upgradeRoom(oldId, UPGRADE_TO);
        // B's client sees the tombstone and follows it, as Element's "this room has been
        // replaced" banner does: join the replacement, which names its predecessor.
        const tombstone = await b.until("the tombstone in B's client", () =>
            b.client.getRoom(oldId)?.currentState.getStateEvents(sdk.EventType.RoomTombstone, ""));
        expect(tombstone.getContent().replacement_room === newId, "the tombstone names the new room", tombstone.getContent());
        await b.client.joinRoom(newId, { viaServers: [a.userId.split(":").slice(1).join(":")] });
        const newRoom = await b.room(newId);
        expect(newRoom.getVersion() === UPGRADE_TO, "the new room has the new version", newRoom.getVersion());
        expect(newRoom.findPredecessor()?.roomId === oldId, "the new room names its predecessor", newRoom.findPredecessor());
        const history = b.client.getRoomUpgradeHistory(oldId, true).map((r) => r.roomId);
        expect(JSON.stringify(history) === JSON.stringify([oldId, newId]), "the SDK links the two rooms", history);
        expect(
            b.client.getVisibleRooms().every((r) => r.roomId !== oldId),
            "the replaced room is hidden from B's room list",
        );
        // The old room's power levels let members speak no more.
        const powerLevels = b.client.getRoom(oldId).currentState.getStateEvents(sdk.EventType.RoomPowerLevels, "");
        expect(
            !b.client.getRoom(oldId).currentState.maySendMessage(b.userId),
            "B may no longer send in the old room",
            powerLevels?.getContent(),
        );
    });

    a.stop();
    b.stop();
    return result;
}

await main("element_features_e2e.mjs", run);

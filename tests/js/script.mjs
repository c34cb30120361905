// The frame the js-sdk end-to-end scripts share (tests/js_e2e.py runs them; waiting is
// wait.mjs): the SDK's logs on stderr, logging a device in, named steps, and the one line on
// stdout with the result or the failure.

import { format } from "node:util";

import * as sdk from "matrix-js-sdk";

import { ExpectationFailed } from "./wait.mjs";

// Everything the SDK logs goes to stderr: stdout is the result line alone.
for (const level of ["log", "info", "debug", "warn", "trace"]) {
    console[level] = (...args) => process.stderr.write(format(...args) + "\n");
}

/** A new device of `user`: the login response (user_id, device_id, access_token). */
export function login(baseUrl, user, password, deviceName) {
    return sdk.createClient({ baseUrl }).loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: deviceName,
    });
}

/**
 * Runs a script from its command line (`node SCRIPT BASE_URL USER_A USER_B PASSWORD`) and exits.
 * `run(baseUrl, userA, userB, password, step)` does the work, each part in
 * `await step(name, async () => ...)`; what it returns is printed as `E2E-RESULT {json}` with the
 * server and the steps done (names and durations). What it throws is printed as
 * `E2E-FAILURE {json}`: the step it came in, the failed expectation (or the stack), the steps
 * passed, and `evidence()`'s fields. `finish()` runs before either line.
 */
export async function main(script, run, { evidence = () => ({}), finish = () => {} } = {}) {
    const [baseUrl, userA, userB, password] = process.argv.slice(2);
    if (!password) {
        process.stderr.write(`usage: node ${script} BASE_URL USER_A USER_B PASSWORD\n`);
        process.exit(2);
    }
    const steps = { done: [], current: null };
    const step = async (name, body) => {
        const started = Date.now();
        steps.current = name;
        const value = await body();
        steps.done.push({ name, ms: Date.now() - started });
        return value;
    };
    try {
        const result = await run(baseUrl.replace(/\/$/, ""), userA, userB, password, step);
        finish();
        process.stdout.write(`E2E-RESULT ${JSON.stringify({ server: baseUrl, ...result, steps: steps.done })}\n`);
        process.exit(0);
    } catch (err) {
        const failure = {
            server: baseUrl,
            step: steps.current,
            error: err instanceof ExpectationFailed ? err.message : String(err.stack ?? err),
            passed: steps.done,
            ...evidence(),
        };
        finish();
        process.stdout.write(`E2E-FAILURE ${JSON.stringify(failure)}\n`);
        process.exit(1);
    }
}

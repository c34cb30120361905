// Waiting on a client's own events, shared by the js-sdk end-to-end scripts: a wait is re-checked
// whenever the script's client reports something (a sync, an event, a decryption) and is
// bounded by a timeout that only serves to fail, so no script sleeps to synchronize.

const STEP_TIMEOUT_MS = 30_000; // a failure bound, not a wait: every step resolves on an event

/** A failed expectation: the scripts report its message as the failure, not a stack trace. */
export class ExpectationFailed extends Error {}

export function expect(condition, message, details) {
    if (!condition) {
        throw new ExpectationFailed(details === undefined ? message : `${message}: ${JSON.stringify(details)}`);
    }
}

/** The pending waits of one client (`label` names it in a timeout's message). */
export class Waits {
    constructor(label) {
        this.label = label;
        this.pending = new Set();
    }

    /** Re-checks every pending wait: the client calls it on each thing it reports. */
    recheck() {
        for (const waiter of [...this.pending]) waiter();
    }

    /** Resolves with `check()`'s first truthy value, checked now and on every `recheck()`;
     * rejects when STEP_TIMEOUT_MS passes first, with `explain()` if given. */
    until(description, check, explain) {
        return new Promise((resolve, reject) => {
            const done = () => {
                clearTimeout(timer);
                this.pending.delete(waiter);
            };
            const waiter = () => {
                let value;
                try {
                    value = check();
                } catch (err) {
                    done();
                    reject(err);
                    return;
                }
                if (value) {
                    done();
                    resolve(value);
                }
            };
            const timer = setTimeout(() => {
                this.pending.delete(waiter);
                const why = explain ? `: ${JSON.stringify(explain())}` : "";
                reject(new ExpectationFailed(`${this.label}: no ${description} within ${STEP_TIMEOUT_MS} ms${why}`));
            }, STEP_TIMEOUT_MS);
            this.pending.add(waiter);
            waiter();
        });
    }
}

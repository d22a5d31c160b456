-- RustyRay durable queue, schema 1 (SQLite). Times are microseconds since the Unix epoch.
CREATE TABLE rustyray_jobs (
    id               BLOB PRIMARY KEY NOT NULL,      -- UUID v7: time-ordered
    function         TEXT NOT NULL,                  -- registered name, crate::module::function
    args             TEXT NOT NULL,                  -- JSON array, one element per parameter
    queue            TEXT NOT NULL,
    priority         INTEGER NOT NULL CHECK (priority BETWEEN -100 AND 100),
    state            TEXT NOT NULL CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    run_after        BIGINT NOT NULL,
    name             TEXT,
    options          TEXT NOT NULL,                  -- JSON: retries, backoff, timeout, ...
    max_attempts     INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,     -- attempts charged against max_attempts
    runs             INTEGER NOT NULL DEFAULT 0,     -- attempt rows, charged or not
    current_attempt  BLOB,
    worker_id        TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    result           TEXT,                           -- JSON, when small enough
    result_ref       TEXT,                           -- where a larger result is kept
    last_error       TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX rustyray_jobs_ready ON rustyray_jobs (queue, priority DESC, id) WHERE state = 'QUEUED';
CREATE INDEX rustyray_jobs_state ON rustyray_jobs (state, queue);
CREATE INDEX rustyray_jobs_function ON rustyray_jobs (function);
CREATE INDEX rustyray_jobs_worker ON rustyray_jobs (worker_id) WHERE state = 'RUNNING';

CREATE TABLE rustyray_attempts (
    id              BLOB PRIMARY KEY NOT NULL,
    job_id          BLOB NOT NULL REFERENCES rustyray_jobs (id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    runner          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('SUBMITTED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'LOST')),
    charged         BOOLEAN NOT NULL DEFAULT TRUE,
    worker_id       TEXT,
    ray_job_id      TEXT,
    submitted_at    BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    last_heartbeat  BIGINT NOT NULL,
    error_class     TEXT,
    error_message   TEXT,
    backtrace       TEXT,
    result_ref      TEXT,
    log_ref         TEXT,
    UNIQUE (job_id, attempt)
);
CREATE INDEX rustyray_attempts_state ON rustyray_attempts (state);
CREATE INDEX rustyray_attempts_heartbeat ON rustyray_attempts (last_heartbeat);
CREATE INDEX rustyray_attempts_worker ON rustyray_attempts (worker_id) WHERE state IN ('SUBMITTED', 'RUNNING');

CREATE TABLE rustyray_workers (
    id             TEXT PRIMARY KEY NOT NULL,        -- unique per process
    host           TEXT NOT NULL,
    pid            BIGINT NOT NULL,
    queues         TEXT NOT NULL,                    -- comma-separated
    concurrency    INTEGER NOT NULL,
    runner         TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('RUNNING', 'STOPPED', 'DEAD'))
);

-- Concurrency limits that hold across every worker: per queue, and '*' for all jobs.
CREATE TABLE rustyray_limits (
    queue       TEXT PRIMARY KEY NOT NULL,
    max_running INTEGER NOT NULL CHECK (max_running >= 0)
);

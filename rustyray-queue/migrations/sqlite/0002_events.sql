-- RustyRay durable queue, schema 2 (SQLite): the lifecycle event outbox.
-- Every job transition writes one event in the same transaction as the
-- transition itself (triggers), so no path can change a job without its
-- event and no event can outlive a rolled-back change. Readers (the service's
-- event feed, the NATS publisher) follow `seq`; `published_at` marks what the
-- broker has acknowledged.
CREATE TABLE rustyray_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,   -- submitted, started, retried, released, succeeded, failed, cancelled, lost
    job_id       BLOB NOT NULL,
    function     TEXT NOT NULL,
    queue        TEXT NOT NULL,
    state        TEXT NOT NULL,   -- the job's state after the transition
    attempt      INTEGER NOT NULL,
    error        TEXT,
    args         TEXT,            -- only when the job opted in to recording its arguments
    at           BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX rustyray_events_unpublished ON rustyray_events (seq) WHERE published_at IS NULL;
CREATE INDEX rustyray_events_at ON rustyray_events (at);

CREATE TRIGGER rustyray_jobs_submitted AFTER INSERT ON rustyray_jobs
BEGIN
    INSERT INTO rustyray_events (kind, job_id, function, queue, state, attempt, args, at)
    VALUES ('submitted', NEW.id, NEW.function, NEW.queue, NEW.state, NEW.runs,
            CASE WHEN json_extract(NEW.options, '$.record_args') THEN NEW.args END, NEW.created_at);
END;

CREATE TRIGGER rustyray_jobs_moved AFTER UPDATE OF state ON rustyray_jobs
WHEN NEW.state <> OLD.state
BEGIN
    INSERT INTO rustyray_events (kind, job_id, function, queue, state, attempt, error, at)
    VALUES (
        CASE NEW.state
            WHEN 'RUNNING' THEN 'started'
            WHEN 'QUEUED' THEN
                CASE WHEN OLD.state = 'RUNNING' AND NEW.attempts < OLD.attempts THEN 'released' ELSE 'retried' END
            WHEN 'SUCCEEDED' THEN 'succeeded'
            WHEN 'FAILED' THEN 'failed'
            ELSE 'cancelled'
        END,
        NEW.id, NEW.function, NEW.queue, NEW.state, NEW.runs,
        CASE WHEN NEW.state IN ('QUEUED', 'FAILED', 'CANCELLED') AND OLD.state = 'RUNNING' THEN NEW.last_error END,
        CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER rustyray_attempts_lost AFTER UPDATE OF state ON rustyray_attempts
WHEN NEW.state = 'LOST' AND OLD.state <> 'LOST'
BEGIN
    INSERT INTO rustyray_events (kind, job_id, function, queue, state, attempt, error, at)
    SELECT 'lost', j.id, j.function, j.queue, j.state, NEW.attempt, NEW.error_message,
           CAST(unixepoch('subsec') * 1000000 AS INTEGER)
    FROM rustyray_jobs j WHERE j.id = NEW.job_id;
END;

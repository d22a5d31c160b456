-- RustyRay durable queue, schema 2 (PostgreSQL): the lifecycle event outbox.
-- Every job transition writes one event in the same transaction as the
-- transition itself (statement triggers over transition tables, so a batch
-- of a thousand jobs costs one trigger call), and wakes listeners on the
-- `rustyray_feed` channel. Readers follow `seq`; `published_at` marks what
-- the broker has acknowledged.
CREATE TABLE rustyray_events (
    seq          BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL,   -- submitted, started, retried, released, succeeded, failed, cancelled, lost
    job_id       UUID NOT NULL,
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

CREATE FUNCTION rustyray_jobs_submitted() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    INSERT INTO rustyray_events (kind, job_id, function, queue, state, attempt, args, at)
    SELECT 'submitted', n.id, n.function, n.queue, n.state, n.runs,
           CASE WHEN (n.options::jsonb ->> 'record_args')::boolean THEN n.args END, n.created_at
    FROM new_rows n ORDER BY n.id;
    IF FOUND THEN
        PERFORM pg_notify('rustyray_feed', '');
    END IF;
    RETURN NULL;
END
$body$;

CREATE TRIGGER rustyray_jobs_submitted AFTER INSERT ON rustyray_jobs
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION rustyray_jobs_submitted();

CREATE FUNCTION rustyray_jobs_moved() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    INSERT INTO rustyray_events (kind, job_id, function, queue, state, attempt, error, at)
    SELECT CASE n.state
               WHEN 'RUNNING' THEN 'started'
               WHEN 'QUEUED' THEN
                   CASE WHEN o.state = 'RUNNING' AND n.attempts < o.attempts THEN 'released' ELSE 'retried' END
               WHEN 'SUCCEEDED' THEN 'succeeded'
               WHEN 'FAILED' THEN 'failed'
               ELSE 'cancelled'
           END,
           n.id, n.function, n.queue, n.state, n.runs,
           CASE WHEN n.state IN ('QUEUED', 'FAILED', 'CANCELLED') AND o.state = 'RUNNING' THEN n.last_error END,
           CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.state <> o.state
    ORDER BY n.id;
    IF FOUND THEN
        PERFORM pg_notify('rustyray_feed', '');
    END IF;
    RETURN NULL;
END
$body$;

CREATE TRIGGER rustyray_jobs_moved AFTER UPDATE ON rustyray_jobs
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION rustyray_jobs_moved();

CREATE FUNCTION rustyray_attempts_lost() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    INSERT INTO rustyray_events (kind, job_id, function, queue, state, attempt, error, at)
    SELECT 'lost', j.id, j.function, j.queue, j.state, n.attempt, n.error_message,
           CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)
    FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN rustyray_jobs j ON j.id = n.job_id
    WHERE n.state = 'LOST' AND o.state <> 'LOST'
    ORDER BY n.id;
    IF FOUND THEN
        PERFORM pg_notify('rustyray_feed', '');
    END IF;
    RETURN NULL;
END
$body$;

CREATE TRIGGER rustyray_attempts_lost AFTER UPDATE ON rustyray_attempts
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION rustyray_attempts_lost();

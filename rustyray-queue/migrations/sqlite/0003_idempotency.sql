-- RustyRay durable queue, schema 3: idempotent enqueues. A job enqueued
-- with a key that a job in the table already has is not written again.
ALTER TABLE rustyray_jobs ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX rustyray_jobs_idempotency ON rustyray_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

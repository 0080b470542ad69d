"""Server-side functions of the PostgreSQL store: the busy paths in one round trip.

A label (commit it, end its lease, claim the labeler's next tasks) and a claim
for several labelers at once are each one `SELECT` of a PL/pgSQL function: one
network round trip and one implicit transaction, instead of BEGIN, a statement
per step and COMMIT. The functions are (re)created on every open, under the
migration lock, so they always match the running release.

A model's requests and ACKs stream in (relay/pipeline.py): those arriving while
one round trip is under way go together in the next (feedback/coalesce.py), one
function call for the lot. Those and the claims commit without waiting for the
WAL flush (`synchronous_commit` off for their transaction, as the SQLite store
commits them without fsync): their senders replay them, while a label is on
disk before its ACK goes out.

Refusals raise SQLSTATE `SWA01` (unknown task, or no longer leased), `SWA02`
(leased to someone else) and `SWA03` (too many pending requests); the store
turns them into UnknownTask / NotYourTask / LimitReached.
"""

from __future__ import annotations

UNKNOWN_TASK = "SWA01"
NOT_YOUR_TASK = "SWA02"
LIMIT_REACHED = "SWA03"

# What each function returns per task: the store's task row (`_TASK_COLUMNS`).
_TASK_ROW = """o_task_id text, o_labeler text, o_lease_expires double precision,
    o_status text, o_id integer, o_room text, o_sample_id text, o_sample_is_int integer,
    o_requester text, o_kind text, o_content text, o_answer text, o_question text,
    o_prediction text, o_confidence double precision, o_priority double precision,
    o_overlap integer, o_extra text"""

_TASK_ROWS_OF = """SELECT t.task_id, t.labeler, t.lease_expires, t.status, r.id, r.room,
    r.sample_id, r.sample_is_int, r.requester, r.kind, r.content, r.answer, r.question,
    r.prediction, r.confidence, r.priority, r.overlap, r.extra
    FROM tasks t JOIN requests r ON r.id = t.request_id
    WHERE t.task_id = ANY(ids) ORDER BY array_position(ids, t.task_id)"""

FUNCTIONS = [
    # Lease up to p_count requests to one labeler; returns the new task ids. SKIP
    # LOCKED: a request another node is claiming right now is passed over.
    """CREATE OR REPLACE FUNCTION swergio_al_claim(p_room text, p_labeler text,
        p_count integer, p_lease double precision, p_now double precision)
    RETURNS text[] LANGUAGE plpgsql AS $$
    DECLARE
        v_request integer;
        v_task text;
        ids text[] := '{}';
    BEGIN
        IF p_count <= 0 THEN
            RETURN ids;
        END IF;
        FOR v_request IN
            SELECT r.id FROM requests r WHERE r.room = p_room AND r.status = 'open'
                AND r.free_slots > 0 AND NOT EXISTS (SELECT 1 FROM tasks t
                    WHERE t.request_id = r.id AND t.labeler = p_labeler
                    AND t.status IN ('leased', 'done', 'skipped'))
            ORDER BY r.priority DESC, r.id LIMIT p_count FOR UPDATE OF r SKIP LOCKED
        LOOP
            v_task := md5(random()::text || clock_timestamp()::text || v_request::text);
            UPDATE requests SET in_flight = in_flight + 1 WHERE id = v_request;
            INSERT INTO tasks (task_id, request_id, room, labeler, status, lease_expires,
                               created, updated)
                VALUES (v_task, v_request, p_room, p_labeler, 'leased', p_now + p_lease,
                        p_now, p_now);
            ids := ids || v_task;
        END LOOP;
        RETURN ids;
    END $$""",
    # Claims for several labelers in turn (p_labelers[i] wants p_counts[i] in
    # p_rooms[i]): the claims of several callers in one round trip (coalesce.py).
    # Each task row comes with o_want, the index (from 1) of the want it answers.
    f"""CREATE OR REPLACE FUNCTION swergio_al_claim_batch(p_rooms text[], p_labelers text[],
        p_counts integer[], p_leases double precision[], p_nows double precision[])
    RETURNS TABLE (o_want integer, {_TASK_ROW}) LANGUAGE plpgsql AS $$
    DECLARE
        claimed text[];
        ids text[] := '{{}}';
        wants integer[] := '{{}}';
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        FOR i IN 1 .. coalesce(array_length(p_rooms, 1), 0) LOOP
            claimed := swergio_al_claim(p_rooms[i], p_labelers[i], p_counts[i], p_leases[i],
                                        p_nows[i]);
            ids := ids || claimed;
            wants := wants || array_fill(i, ARRAY[coalesce(array_length(claimed, 1), 0)]);
        END LOOP;
        RETURN QUERY SELECT w.want, t.task_id, t.labeler, t.lease_expires, t.status, r.id,
            r.room, r.sample_id, r.sample_is_int, r.requester, r.kind, r.content, r.answer,
            r.question, r.prediction, r.confidence, r.priority, r.overlap, r.extra
            FROM unnest(ids, wants) WITH ORDINALITY AS w(task_id, want, n)
            JOIN tasks t ON t.task_id = w.task_id JOIN requests r ON r.id = t.request_id
            ORDER BY w.n;
    END $$""",
    # Commit a label for a leased task, close the task, count the label on its
    # request, then claim up to p_claim more tasks for the same labeler. The
    # labeled task comes first in the result, the claimed ones after it. The
    # task row is locked first, so a label racing an expiry on another node
    # either commits or finds the task expired, never both.
    f"""CREATE OR REPLACE FUNCTION swergio_al_label(p_task_id text, p_labeler text,
        p_answer text, p_seconds double precision, p_label_id text, p_now double precision,
        p_claim integer, p_lease double precision)
    RETURNS TABLE ({_TASK_ROW}) LANGUAGE plpgsql AS $$
    DECLARE
        v_task record;
        ids text[];
    BEGIN
        SELECT t.labeler, t.status, t.request_id, t.room INTO v_task FROM tasks t
            WHERE t.task_id = p_task_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no task %', quote_literal(p_task_id)
                USING ERRCODE = '{UNKNOWN_TASK}';
        END IF;
        IF v_task.labeler <> p_labeler THEN
            RAISE EXCEPTION 'task % is leased to someone else', quote_literal(p_task_id)
                USING ERRCODE = '{NOT_YOUR_TASK}';
        END IF;
        IF v_task.status <> 'leased' THEN
            RAISE EXCEPTION 'task % is %, no longer leased', quote_literal(p_task_id),
                v_task.status USING ERRCODE = '{UNKNOWN_TASK}';
        END IF;
        UPDATE tasks SET status = 'done', updated = p_now WHERE tasks.task_id = p_task_id;
        UPDATE requests SET labeled = labeled + 1, in_flight = GREATEST(in_flight - 1, 0),
            status = CASE WHEN labeled + 1 >= overlap THEN 'done' ELSE status END,
            updated = p_now WHERE requests.id = v_task.request_id;
        INSERT INTO labels (label_id, task_id, room, sample_id, sample_is_int, requester,
                            labeler, answer, seconds, created, acked, request_id)
            SELECT p_label_id, p_task_id, r.room, r.sample_id, r.sample_is_int, r.requester,
                   p_labeler, p_answer, p_seconds, p_now, 0, r.id
            FROM requests r WHERE r.id = v_task.request_id;
        ids := ARRAY[p_task_id] ||
            swergio_al_claim(v_task.room, p_labeler, p_claim, p_lease, p_now);
        RETURN QUERY {_TASK_ROWS_OF};
    END $$""",
    # Store a request, deduplicated by (room, sample_id): a pending one is updated,
    # a canceled one reopened, a labeled one left alone. With p_limit > 0 the
    # requester's open requests are counted first (returned as o_pending) and
    # the request is refused at the limit. Returns the outcome (Submitted).
    f"""CREATE OR REPLACE FUNCTION swergio_al_submit(p_room text, p_sample_id text,
        p_is_int integer, p_requester text, p_kind text, p_content text, p_answer text,
        p_question text, p_prediction text, p_confidence double precision,
        p_priority double precision, p_overlap integer, p_extra text,
        p_now double precision, p_limit integer)
    RETURNS TABLE (o_outcome text, o_pending bigint) LANGUAGE plpgsql AS $$
    DECLARE
        v_id integer;
        v_status text;
        v_found boolean;
        v_pending bigint;
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        LOOP
            SELECT r.id, r.status INTO v_id, v_status FROM requests r
                WHERE r.room = p_room AND r.sample_id = p_sample_id FOR UPDATE;
            v_found := FOUND;
            IF v_found AND v_status = 'done' THEN
                RETURN QUERY SELECT 'already_labeled'::text, NULL::bigint;
                RETURN;
            END IF;
            IF v_found AND v_status = 'open' THEN
                UPDATE requests SET requester = p_requester, kind = p_kind, content = p_content,
                    answer = p_answer, question = p_question, prediction = p_prediction,
                    confidence = p_confidence, priority = p_priority, overlap = p_overlap,
                    extra = p_extra, updated = p_now WHERE id = v_id;
                RETURN QUERY SELECT 'updated'::text, NULL::bigint;
                RETURN;
            END IF;
            IF p_limit > 0 THEN
                SELECT COUNT(*) INTO v_pending FROM requests r
                    WHERE r.requester = p_requester AND r.status = 'open';
                IF v_pending >= p_limit THEN
                    RAISE EXCEPTION '% already has % pending requests', p_requester, p_limit
                        USING ERRCODE = '{LIMIT_REACHED}';
                END IF;
            END IF;
            IF v_found THEN  -- canceled earlier: ask again, from scratch
                UPDATE requests SET requester = p_requester, kind = p_kind, content = p_content,
                    answer = p_answer, question = p_question, prediction = p_prediction,
                    confidence = p_confidence, priority = p_priority, overlap = p_overlap,
                    extra = p_extra, status = 'open', updated = p_now WHERE id = v_id;
                RETURN QUERY SELECT 'reopened'::text, v_pending;
                RETURN;
            END IF;
            INSERT INTO requests (room, sample_id, sample_is_int, requester, kind, content,
                answer, question, prediction, confidence, priority, overlap, extra, status,
                created, updated)
                VALUES (p_room, p_sample_id, p_is_int, p_requester, p_kind, p_content,
                    p_answer, p_question, p_prediction, p_confidence, p_priority, p_overlap,
                    p_extra, 'open', p_now, p_now)
                ON CONFLICT (room, sample_id) DO NOTHING RETURNING id INTO v_id;
            IF FOUND THEN
                RETURN QUERY SELECT 'created'::text, v_pending;
                RETURN;
            END IF;
            -- Another node inserted the same sample meanwhile: decide again, on its row.
        END LOOP;
    END $$""",
    # Several requests in one round trip (feedback/coalesce.py), in order: each one's
    # outcome and pending count as swergio_al_submit gives them, or a refusal at
    # the limit as o_outcome 'limit_reached' (the others still go in).
    """CREATE OR REPLACE FUNCTION swergio_al_submit_many(p_rooms text[], p_sample_ids text[],
        p_is_ints integer[], p_requesters text[], p_kinds text[], p_contents text[],
        p_answers text[], p_questions text[], p_predictions text[],
        p_confidences double precision[], p_priorities double precision[],
        p_overlaps integer[], p_extras text[], p_now double precision, p_limits integer[])
    RETURNS TABLE (o_outcome text, o_pending bigint) LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        FOR i IN 1 .. coalesce(array_length(p_rooms, 1), 0) LOOP
            BEGIN
                RETURN QUERY SELECT * FROM swergio_al_submit(p_rooms[i], p_sample_ids[i],
                    p_is_ints[i], p_requesters[i], p_kinds[i], p_contents[i], p_answers[i],
                    p_questions[i], p_predictions[i], p_confidences[i], p_priorities[i],
                    p_overlaps[i], p_extras[i], p_now, p_limits[i]);
            EXCEPTION WHEN SQLSTATE '""" + LIMIT_REACHED + """' THEN
                RETURN QUERY SELECT 'limit_reached'::text, NULL::bigint;
            END;
        END LOOP;
    END $$""",
    # Several ACKs in one round trip: the (label, requester) pairs that matched.
    """CREATE OR REPLACE FUNCTION swergio_al_ack_many(p_label_ids text[], p_requesters text[],
        p_now double precision) RETURNS TABLE (o_label_id text, o_requester text)
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        RETURN QUERY UPDATE labels l SET acked = 1, acked_at = COALESCE(l.acked_at, p_now)
            FROM unnest(p_label_ids, p_requesters) AS a(label_id, requester)
            WHERE l.label_id = a.label_id AND l.requester = a.requester
            RETURNING l.label_id, l.requester;
    END $$""",
]

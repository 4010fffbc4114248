-- A whole batch of sends in one PostgreSQL statement.
--
-- Why one statement: the batch used to be eight round trips (three reads,
-- BEGIN, three writes, COMMIT), and on a busy machine each one waited for a
-- PostgreSQL backend to be scheduled; as one statement it is one round
-- trip. Its text never changes, so each connection prepares it once.
--
-- $1 is a JSON array of {ord, id, chat_id, sender_id, key, content,
-- created_at, reply_to_id, mentions, attachments, files}, one per send
-- (mentions: the mentioned user ids, space-separated; attachments: the
-- messages.attachments column; files: the attached file ids in order,
-- space-separated, one message_files row each).
--
-- Rows whose sender is a member (and exists) and whose key is not stored
-- yet are inserted: each chat's last_seq moves up by its count, the rows
-- take the seqs in between in batch order (ord), and each sender's
-- watermarks move to their newest message. Data-modifying WITH parts run
-- exactly once and all see one snapshot; the statement is its own
-- transaction, so a unique violation (a key stored concurrently) undoes all
-- of it. Returns ord, seq and the sender's username of every inserted row.
WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS i(
        ord bigint, id text, chat_id text, sender_id text, key text,
        content text, created_at bigint, reply_to_id text, mentions text,
        attachments text, files text)
), ok AS (
    SELECT i.*, u.username
    FROM input i
    JOIN chat_members m ON m.chat_id = i.chat_id AND m.user_id = i.sender_id
    JOIN users u ON u.id = i.sender_id
    -- A lookup per row in the (sender_id, idempotency_key) index; written
    -- as `key IS NULL OR NOT EXISTS (...)` the planner hashed the whole
    -- messages table instead.
    LEFT JOIN LATERAL (
        SELECT 1 AS found FROM messages x
        WHERE x.sender_id = i.sender_id AND x.idempotency_key = i.key
        LIMIT 1) s ON true
    WHERE s.found IS NULL
), counts AS (
    SELECT chat_id, count(*) AS n, max(created_at) AS at FROM ok GROUP BY chat_id
), bumped AS (
    UPDATE chats c SET last_seq = c.last_seq + counts.n, last_activity_at = counts.at
    FROM counts WHERE c.id = counts.chat_id
    RETURNING c.id, c.last_seq - counts.n AS base
), numbered AS (
    SELECT ok.*, b.base + row_number() OVER (PARTITION BY ok.chat_id ORDER BY ok.ord) AS seq
    FROM ok JOIN bumped b ON b.id = ok.chat_id
), inserted AS (
    INSERT INTO messages (id, chat_id, seq, sender_id, idempotency_key, content, created_at,
                          reply_to_id, mentions, attachments)
    SELECT id, chat_id, seq, sender_id, key, content, created_at, reply_to_id, mentions,
           attachments
    FROM numbered
    RETURNING id
), mentioned AS (
    -- One row per mentioned member, for the unread-mention counts.
    INSERT INTO mentions (message_id, user_id, chat_id, seq)
    SELECT n.id, u.user_id, n.chat_id, n.seq
    FROM numbered n, unnest(string_to_array(n.mentions, ' ')) AS u(user_id)
    WHERE n.mentions <> ''
    RETURNING 1
), attached AS (
    -- One row per attached file; file_id is the primary key, so a file
    -- another message holds is a unique violation (the caller retries one
    -- by one and answers that send alone).
    INSERT INTO message_files (file_id, message_id, chat_id, position)
    SELECT f.file_id, n.id, n.chat_id, f.pos - 1
    FROM numbered n,
         unnest(string_to_array(n.files, ' ')) WITH ORDINALITY AS f(file_id, pos)
    WHERE n.files <> ''
    RETURNING 1
), marks AS (
    UPDATE chat_members m SET delivered_seq = w.seq, read_seq = w.seq
    FROM (SELECT chat_id, sender_id, max(seq) AS seq FROM numbered GROUP BY chat_id, sender_id) w
    WHERE m.chat_id = w.chat_id AND m.user_id = w.sender_id
    RETURNING m.user_id
)
SELECT n.ord, n.seq, n.username FROM numbered n

-- One commit, one round trip. A unit of work (the order written with its version check, stock
-- moves refused below zero, the outbox events and their jobs, the idempotency key, the
-- handled-event mark) runs as this one statement instead of a statement per part inside
-- BEGIN … COMMIT. A condition that does not hold raises an error with an Orderly code, which
-- undoes everything the statement did:
--   OY001 the event was already handled by this consumer
--   OY002 the idempotency key is taken
--   OY003 the order is not at the expected version (or does not exist)
--   OY004 not enough stock of the product named in the message
--   OY005 no stock row for the product named in the message
-- Parameters are NULL (or empty arrays) for the parts a commit does not have. Job i belongs to
-- event p_job_events[i] (1-based); jobs are inserted in order, so their ids keep each order's
-- jobs in sequence.
CREATE FUNCTION orderly_commit(
    p_handled_consumer TEXT, p_handled_event UUID, p_handled_job BIGINT,
    p_idem_key TEXT, p_idem_hash TEXT, p_idem_order UUID, p_idem_at BIGINT,
    p_order_id UUID, p_order_customer TEXT, p_order_status TEXT, p_order_version INTEGER,
    p_order_created BIGINT, p_order_doc TEXT, p_order_expected INTEGER,
    p_stock_products TEXT[], p_stock_available BIGINT[], p_stock_reserved BIGINT[],
    p_adj_product TEXT, p_adj_delta BIGINT, p_adj_reason TEXT, p_adj_actor TEXT, p_adj_at BIGINT,
    p_event_ids UUID[], p_event_orders UUID[], p_event_kinds TEXT[], p_event_ats BIGINT[],
    p_event_payloads TEXT[],
    p_job_events INTEGER[], p_job_consumers TEXT[], p_job_lanes TEXT[]
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    seqs BIGINT[] := '{}';
    s BIGINT;
    i INTEGER;
BEGIN
    IF p_handled_consumer IS NOT NULL THEN
        INSERT INTO handled_events (consumer, event_id, at)
        VALUES (p_handled_consumer, p_handled_event, (extract(epoch from now()) * 1000)::bigint)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'OY001', MESSAGE = 'event already handled';
        END IF;
        DELETE FROM jobs WHERE id = p_handled_job;
    END IF;
    IF p_idem_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (key, request_hash, order_id, created_at)
        VALUES (p_idem_key, p_idem_hash, p_idem_order, p_idem_at)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'OY002', MESSAGE = 'idempotency key taken';
        END IF;
    END IF;
    IF p_order_id IS NOT NULL THEN
        IF p_order_expected IS NULL THEN
            INSERT INTO orders (id, customer_id, status, version, created_at, doc)
            VALUES (p_order_id, p_order_customer, p_order_status, p_order_version,
                    p_order_created, p_order_doc);
        ELSE
            UPDATE orders SET status = p_order_status, version = p_order_version, doc = p_order_doc
            WHERE id = p_order_id AND version = p_order_expected;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'OY003', MESSAGE = 'order version changed';
            END IF;
        END IF;
    END IF;
    -- Moves arrive sorted by product id, so concurrent commits lock stock rows in one order.
    FOR i IN 1 .. coalesce(array_length(p_stock_products, 1), 0) LOOP
        UPDATE stock
        SET available = available + p_stock_available[i], reserved = reserved + p_stock_reserved[i]
        WHERE product_id = p_stock_products[i]
          AND available + p_stock_available[i] >= 0 AND reserved + p_stock_reserved[i] >= 0;
        IF NOT FOUND THEN
            IF EXISTS (SELECT 1 FROM stock WHERE product_id = p_stock_products[i]) THEN
                RAISE EXCEPTION USING ERRCODE = 'OY004', MESSAGE = p_stock_products[i];
            ELSE
                RAISE EXCEPTION USING ERRCODE = 'OY005', MESSAGE = p_stock_products[i];
            END IF;
        END IF;
    END LOOP;
    IF p_adj_product IS NOT NULL THEN
        INSERT INTO stock_adjustments (product_id, delta, reason, actor, at)
        VALUES (p_adj_product, p_adj_delta, p_adj_reason, p_adj_actor, p_adj_at);
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_event_ids, 1), 0) LOOP
        INSERT INTO events (id, order_id, kind, at, payload)
        VALUES (p_event_ids[i], p_event_orders[i], p_event_kinds[i], p_event_ats[i],
                p_event_payloads[i])
        RETURNING seq INTO s;
        seqs := seqs || s;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(p_job_events, 1), 0) LOOP
        INSERT INTO jobs (order_id, consumer, lane, event_seq, next_at)
        VALUES (p_event_orders[p_job_events[i]], p_job_consumers[i], p_job_lanes[i],
                seqs[p_job_events[i]], 0);
    END LOOP;
END;
$$;

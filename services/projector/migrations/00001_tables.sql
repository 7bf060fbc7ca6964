-- The query tables fed from the USERS and ORDERS streams (docs/projector.md).
-- Every table lives in the schema "projector", which the projector creates
-- before it migrates.

-- +goose Up
CREATE TABLE projector.positions (
    -- The stream, e.g. USERS.
    stream     text PRIMARY KEY,
    -- Every event of the stream up to this sequence is applied; written in
    -- the same transaction as the rows.
    last_seq   bigint NOT NULL DEFAULT 0,
    applied_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projector.positions (stream) VALUES ('USERS'), ('ORDERS');

CREATE TABLE projector.users (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL,
    age        integer NOT NULL,
    -- The user's version: an event older than the row is not applied.
    version    bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- Set by user.deleted. The row stays as a tombstone, so that a late
    -- redelivery of an older event cannot bring the user back.
    deleted_at timestamptz,
    -- USERS sequence of the event that wrote the row.
    seq        bigint NOT NULL
);
CREATE INDEX users_name_prefix ON projector.users (lower(name) text_pattern_ops) WHERE deleted_at IS NULL;
CREATE INDEX users_email_prefix ON projector.users (lower(email) text_pattern_ops) WHERE deleted_at IS NULL;

CREATE TABLE projector.orders (
    id            text PRIMARY KEY,
    user_id       text NOT NULL,
    currency      text NOT NULL,
    total_cents   bigint NOT NULL,
    status        text NOT NULL,
    cancel_reason text NOT NULL DEFAULT '',
    version       bigint NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    -- ORDERS sequence of the event that wrote the row.
    seq           bigint NOT NULL
);
CREATE INDEX orders_user_created ON projector.orders (user_id, created_at, id);
CREATE INDEX orders_status_created ON projector.orders (status, created_at, id);
CREATE INDEX orders_created ON projector.orders (created_at, id);

CREATE TABLE projector.order_items (
    order_id         text NOT NULL,
    -- The item's position in the order, from 0.
    line             integer NOT NULL,
    sku              text NOT NULL,
    quantity         integer NOT NULL,
    unit_price_cents bigint NOT NULL,
    PRIMARY KEY (order_id, line)
);

-- +goose Down
DROP TABLE projector.order_items;
DROP TABLE projector.orders;
DROP TABLE projector.users;
DROP TABLE projector.positions;

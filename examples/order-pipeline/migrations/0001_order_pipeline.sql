-- The order pipeline's own tables. Effect tables (payments, ledger, shipments, notifications) carry no
-- unique constraint on order_id on purpose: exactly-once is onceflow's job here, and a double effect
-- must show up as a second row for the demo's verifier to see, not as a constraint error that hides it.

CREATE TABLE {{schema}}.orders (
  id uuid PRIMARY KEY,
  idempotency_key text NOT NULL,
  customer text NOT NULL,
  sku text NOT NULL,
  quantity integer NOT NULL CHECK (quantity > 0),
  amount_cents integer NOT NULL CHECK (amount_cents >= 0),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE {{schema}}.payments (
  id bigserial PRIMARY KEY,
  order_id uuid NOT NULL,
  amount_cents integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX payments_order_id ON {{schema}}.payments (order_id);

-- The simulated payment provider's side: one charge per call to it.
CREATE TABLE {{schema}}.ledger (
  id bigserial PRIMARY KEY,
  order_id uuid NOT NULL,
  provider_charge_id text NOT NULL,
  amount_cents integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ledger_order_id ON {{schema}}.ledger (order_id);

-- Stock per SKU; fulfilment decrements it, which is not idempotent.
CREATE TABLE {{schema}}.inventory (
  sku text PRIMARY KEY,
  initial_stock integer NOT NULL,
  stock integer NOT NULL
);
INSERT INTO {{schema}}.inventory (sku, initial_stock, stock)
SELECT 'sku-' || n, 1000000, 1000000 FROM generate_series(1, 8) AS n;

CREATE TABLE {{schema}}.shipments (
  id bigserial PRIMARY KEY,
  order_id uuid NOT NULL,
  sku text NOT NULL,
  quantity integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX shipments_order_id ON {{schema}}.shipments (order_id);

CREATE TABLE {{schema}}.notifications (
  id bigserial PRIMARY KEY,
  order_id uuid NOT NULL,
  channel text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX notifications_order_id ON {{schema}}.notifications (order_id);

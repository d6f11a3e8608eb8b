-- Production-like rows for the previous release (migrations init + add_product_status).
-- Two producers share a region: the failure scenario's migration trips on that.
INSERT INTO producers (name, email, region) VALUES
  ('Melissa Apiaries', 'hello@melissa.example', 'Crete'),
  ('Ktima Olive Groves', 'sales@ktima.example', 'Crete'),
  ('Thessaly Mills', 'orders@thessaly.example', 'Thessaly');

-- Real names to backfill slugs from, plus bulk rows so the backfill has work to do.
INSERT INTO products (producer_id, name, price_cents, status) VALUES
  (1, 'Thyme Honey 450g', 1250, 'active'),
  (2, 'Extra Virgin Olive Oil 1L', 1890, 'active'),
  (3, 'Stone-ground Flour (5 kg)', 990, 'retired');
INSERT INTO products (producer_id, name, price_cents)
SELECT 1 + g % 3, 'Bulk product #' || g, 100 + g FROM generate_series(1, 2000) AS g;

INSERT INTO orders (customer_email, created_at)
SELECT 'customer' || g || '@example.org', timestamp '2024-01-01' + g * interval '1 hour'
FROM generate_series(1, 500) AS g;
INSERT INTO order_items (order_id, product_id, quantity)
SELECT 1 + g % 500, 1 + g % 2003, 1 + g % 4 FROM generate_series(1, 1500) AS g;

-- Customers whose card the simulated payment provider declines. The poison order's customer starts
-- here; the demo deletes the row (the card is fixed) before it redrives the dead-lettered order.

CREATE TABLE {{schema}}.declined_cards (
  customer text PRIMARY KEY
);
INSERT INTO {{schema}}.declined_cards (customer) VALUES ('poison-pill');

-- Payments imported from PayPal's activity report: each keeps its status, and a transaction is stored once.
-- Forward-only and frozen: later changes go into new numbered files.

-- PayPal's own word for the payment (Completed, Pending, Refunded, ...), as the report gives it.
alter table payments add column status text not null default 'Completed' check (status ~ '^[A-Za-z][A-Za-z ]{0,39}$');
alter table payments alter column status drop default;

-- The reference is PayPal's transaction id: importing the same report twice must add nothing.
create unique index payments_reference on payments (reference);

-- Report rows are matched to customers by their subscription id.
create index users_paypal_subscription_id on users (paypal_subscription_id) where paypal_subscription_id is not null;

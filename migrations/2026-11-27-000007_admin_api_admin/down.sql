DROP INDEX audit_log_action_idx;
DROP INDEX users_trial_idx;
DROP INDEX payments_revenue_idx;
DROP INDEX payments_paid_user_idx;

"""Pure decisions: phase gates, alerts, rollback triggers, threshold recommendations."""

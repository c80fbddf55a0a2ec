"""SendGrid's signed Event Webhook: a receiver that lands every event as an `interactions` row (docs/webhook.md)."""

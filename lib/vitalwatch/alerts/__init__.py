"""Alert policy, routing to caregivers and notification channels."""

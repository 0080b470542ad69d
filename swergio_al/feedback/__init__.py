"""The human-feedback service: store, queue with leases, the Hub's FeedbackService, Labeler."""

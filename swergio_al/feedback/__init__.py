"""The human-feedback service: store, queue with leases, the Hub's FeedbackService, Labeler."""

from swergio_al.feedback.labeler import SKIP, Labeler

__all__ = ["SKIP", "Labeler"]

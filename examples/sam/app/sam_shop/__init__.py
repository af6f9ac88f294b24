"""A small shop backend on glasswork: an HTTP API enqueues jobs, an SQS-fed worker runs them."""

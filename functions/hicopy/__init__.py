"""HealthImaging copy orchestrator: the code shipped to AWS Lambda."""

"""Record: the resume state (what each file has had sent) and the rejects file."""

"""The zoo's common tester, shared by tests/test_common_models.py."""

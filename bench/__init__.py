"""mockhub benchmarks: `python -m bench`. They print figures; nothing here is asserted in tests."""

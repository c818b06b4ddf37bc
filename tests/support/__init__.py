"""Development support for the tests and benchmarks: the control-plane harness and the
`redis-extender serve` launcher. Not part of the installed package."""

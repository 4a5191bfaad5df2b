from .complexity import (
    BOPS_PER_OP,
    Complexity,
    analyze_complexity,
    config_complexity,
    config_test_pipeline,
    input_channels,
    is_binary_conv,
    memory_bits,
    pipeline_input_size,
)

__all__ = [
    'BOPS_PER_OP', 'Complexity', 'analyze_complexity', 'config_complexity',
    'config_test_pipeline', 'input_channels', 'is_binary_conv',
    'memory_bits', 'pipeline_input_size'
]

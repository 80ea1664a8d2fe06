"""Job-level settings that need no cluster: Ray Data's console output."""

import ray.data

from ipo_ray.loop.job import quiet_ray_data


def test_quiet_ray_data_turns_bars_and_start_lines_off_and_back_on() -> None:
    context = ray.data.DataContext.get_current()
    try:
        quiet_ray_data(True)
        assert context.enable_progress_bars is False and context.print_on_execution_start is False
        quiet_ray_data(False)
        assert context.enable_progress_bars is True and context.print_on_execution_start is True
    finally:
        quiet_ray_data(False)

"""The dashboard's wait between wrong passwords, on a clock the test moves."""

from dashboard.login_throttle import FORGET_AFTER_SECONDS, FREE_ATTEMPTS_ALL_CLIENTS, MAX_WAIT_SECONDS, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_three_wrong_passwords_are_free_then_each_one_doubles_the_wait_up_to_a_minute():
    clock = Clock()
    throttle = LoginThrottle(clock)
    waits = []
    for _ in range(10):
        waits.append(throttle.wait_seconds("203.0.113.7"))
        clock.now += waits[-1]
        throttle.record_failure("203.0.113.7")
    assert waits == [0, 0, 0, 2, 4, 8, 16, 32, MAX_WAIT_SECONDS, MAX_WAIT_SECONDS]


def test_one_clients_guesses_do_not_slow_another_and_the_right_password_clears_the_count():
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(5):
        throttle.record_failure("203.0.113.7")
    assert throttle.wait_seconds("198.51.100.1") == 0
    assert throttle.wait_seconds("203.0.113.7") == 8
    throttle.record_success("203.0.113.7")
    assert throttle.wait_seconds("203.0.113.7") == 0


def test_a_client_idle_for_an_hour_is_forgotten():
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(6):
        throttle.record_failure("203.0.113.7")
    clock.now += FORGET_AFTER_SECONDS + 1
    throttle.record_failure("198.51.100.1")
    assert throttle.wait_seconds("203.0.113.7") == 0


def test_guesses_from_ever_new_addresses_still_wait_once_all_clients_together_used_their_budget():
    clock = Clock()
    throttle = LoginThrottle(clock)
    for number in range(FREE_ATTEMPTS_ALL_CLIENTS):
        assert throttle.wait_seconds(f"192.0.2.{number}") == 0
        throttle.record_failure(f"192.0.2.{number}")
    assert throttle.wait_seconds("198.51.100.9") == 2

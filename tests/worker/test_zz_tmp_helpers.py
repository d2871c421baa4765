pytest_plugins = ["tests.testbed"]
import docker, pytest, httpx
from tests.testbed import engine_stopped, link_down, link_up
def test_helpers(host_by_indexs):
    h2 = host_by_indexs[1]
    c = docker.DockerClient(base_url=h2.engine_url, timeout=5)
    before = c.info()["ID"]
    ctr = c.containers.run("berth-test/web:v1", detach=True, restart_policy={"Name": "always"}, ports={"8080/tcp": (h2.address, None)})
    with engine_stopped(2, kill=True):
        with pytest.raises(docker.errors.DockerException):
            docker.DockerClient(base_url=h2.engine_url, timeout=5).info()
    c = docker.DockerClient(base_url=h2.engine_url, timeout=5)
    assert c.info()["ID"] == before
    ctr.reload(); print(ctr.status, ctr.attrs["State"]["StartedAt"], ctr.attrs["RestartCount"])
    port = ctr.ports["8080/tcp"][0]["HostPort"]
    link_down(2)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{h2.address}:{port}/", timeout=2)
    link_up(2)
    import time; time.sleep(0.3)
    assert httpx.get(f"http://{h2.address}:{port}/", timeout=2).text == "web v1\n"
    ctr.remove(force=True)

"""Region name -> admin API host, with the backup host the vendor documents for DNS trouble."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    name: str
    host: str
    backup_host: str

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}"

    @property
    def backup_endpoint(self) -> str:
        return f"https://{self.backup_host}"


REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("china", "console.tim.qq.com", "adminapi.my-imcloud.com"),
        Region("singapore", "adminapisgp.im.qcloud.com", "adminapisgp.my-imcloud.com"),
        Region("seoul", "adminapikr.im.qcloud.com", "adminapikr.my-imcloud.com"),
        Region("tokyo", "adminapijpn.im.qcloud.com", "adminapijpn.my-imcloud.com"),
        Region("frankfurt", "adminapiger.im.qcloud.com", "adminapiger.my-imcloud.com"),
        # Newer vendor pages no longer list Mumbai's backup host; it is kept until it stops resolving.
        Region("mumbai", "adminapiind.im.qcloud.com", "adminapiind.my-imcloud.com"),
        Region("silicon-valley", "adminapiusa.im.qcloud.com", "adminapiusa.my-imcloud.com"),
        Region("jakarta", "adminapiidn.im.qcloud.com", "adminapiidn.my-imcloud.com"),
    )
}

DEFAULT_REGION = "singapore"

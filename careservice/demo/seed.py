"""A deterministic demo province for the east-west collaboration programme.

Three western rural counties of Ningxia with an elderly-heavy population, each
paired with an eastern urban district of Fujian whose hospitals hold the
clinicians; caregivers live in western villages and serve their township.
"""

import random
from collections.abc import Callable
from datetime import date, time, timedelta

import phonenumbers
import sqlalchemy as sa

from careservice.core import audit
from careservice.core.auth import Actor
from careservice.core.models import Role
from careservice.extensions import db
from careservice.people import users
from careservice.people.models import Provider, Region, Resident
from careservice.people.services import new_calendar_token
from careservice.scheduling.models import AvailabilityRule, ServiceType

DEFAULT_RESIDENTS = 2000
DEMO_PASSWORD = "careservice-demo"
# Ages are drawn against a fixed day so the same seed gives the same people.
REFERENCE_DAY = date(2026, 1, 1)

# (name, lat, lon, [(township, lat, lon)]) per western county, and its partner.
WEST = [
    ("Xiji County", 35.965, 105.729, [
        ("Jiqiang Town", 35.96, 105.73), ("Xinglong Town", 35.87, 105.58),
        ("Pingfeng Town", 36.03, 105.45), ("Jiangtaibao Town", 35.77, 105.66)]),
    ("Haiyuan County", 36.565, 105.647, [
        ("Haicheng Town", 36.56, 105.64), ("Liwang Town", 36.80, 105.82),
        ("Xi'an Town", 36.44, 105.44)]),
    ("Longde County", 35.625, 106.111, [
        ("Chengguan Town", 35.62, 106.11), ("Shatang Town", 35.67, 106.02),
        ("Liancai Town", 35.55, 106.20)]),
]
EAST = [
    ("Gulou District", 26.082, 119.298, "Dongjie Subdistrict"),
    ("Siming District", 24.445, 118.082, "Zhongshan Subdistrict"),
    ("Licheng District", 24.908, 118.587, "Kaiyuan Subdistrict"),
]
VILLAGE_STEMS = ["Dongpo", "Xiaping", "Shangwan", "Majia", "Gaotai", "Liuhe", "Shuiquan",
                 "Yangwa", "Hongyao", "Baiya", "Nanshan", "Beizhuang", "Heping", "Sanhe",
                 "Qingshui", "Shiguan", "Taoyuan", "Xinzhuang", "Wangjia", "Zhaoping"]
SURNAMES = ["马", "王", "李", "张", "杨", "海", "田", "刘", "苏", "何", "陈", "林", "黄", "郭"]
GIVEN = ["秀英", "桂兰", "玉兰", "凤英", "淑珍", "建国", "志强", "德明", "文华", "金花",
         "兰英", "占福", "福贵", "有才", "俊", "梅", "成", "红霞", "永红", "国强"]
ID_NAMES = ["Siti Aminah", "Lim Siu Lan", "Tan Hok Seng", "Dewi Lestari", "Oei Kim Hwa",
            "Budi Santoso"]
EN_NAMES = ["Margaret Hill", "David Owens", "Helen Clarke", "Peter Walsh"]
MOBILE_PREFIXES = ["135", "136", "137", "138", "139", "150", "151", "158", "159", "186",
                   "187", "188", "189", "177", "199"]

SERVICE_TYPES = [
    dict(code="gp_consult", name="GP consultation", modality="video",
         duration_minutes=20, buffer_minutes=5, required_skill="gp"),
    dict(code="chronic_followup", name="Chronic disease follow-up", modality="phone",
         duration_minutes=15, buffer_minutes=5, required_skill="chronic_care"),
    dict(code="mental_health", name="Mental health consultation", modality="video",
         duration_minutes=45, buffer_minutes=15, required_skill="mental_health"),
    dict(code="elder_home_visit", name="Elder care home visit", modality="home_visit",
         duration_minutes=60, buffer_minutes=0, required_skill="elder_care"),
]


def has_data() -> bool:
    return db.session.execute(sa.select(Region.id).limit(1)).first() is not None


def demo_logins() -> list[tuple[str, str, str]]:
    return [
        ("admin", "admin", "everything"),
        ("coordinator", "coordinator", "Xiji County"),
        ("vhw", "vhw", "two villages of Jiqiang Town, Xiji County"),
        ("clinician", "clinician", "a Gulou District GP serving Xiji County"),
        ("caregiver", "caregiver", "a caregiver of Jiqiang Town"),
    ]


class _Builder:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.regions: list[Region] = []

    def region(self, name, kind, parent, lat, lon, **attrs) -> Region:
        region = Region(name=name, kind=kind, parent=parent, latitude=round(lat, 5),
                        longitude=round(lon, 5), timezone="Asia/Shanghai",
                        zone=attrs.get("zone", parent.zone if parent else None),
                        setting=attrs.get("setting", parent.setting if parent else None))
        db.session.add(region)
        db.session.flush()
        region.path = f"{parent.path if parent else '/'}{region.id}/"
        self.regions.append(region)
        return region

    def villages(self, township: Region, count: int, suffix: str) -> list[Region]:
        stems = self.rng.sample(VILLAGE_STEMS, count)
        return [self.region(f"{stem} {suffix}", "village", township,
                            township.latitude + self.rng.uniform(-0.08, 0.08),
                            township.longitude + self.rng.uniform(-0.08, 0.08))
                for stem in stems]

    def phone(self) -> str:
        while True:
            raw = f"+86{self.rng.choice(MOBILE_PREFIXES)}{self.rng.randrange(10**8):08d}"
            if phonenumbers.is_valid_number(phonenumbers.parse(raw)):
                return raw

    def birth_date(self, elderly_heavy: bool) -> date:
        weights = [20, 30, 30, 20] if elderly_heavy else [55, 20, 15, 10]
        low, high = self.rng.choices([(30, 59), (60, 69), (70, 79), (80, 98)], weights)[0]
        age_days = self.rng.randint(low * 365 + 1, high * 365 + 364)
        return REFERENCE_DAY - timedelta(days=age_days)


def seed(residents: int = DEFAULT_RESIDENTS, seed: int = 2026,
         progress: Callable[[int], None] | None = None) -> dict:
    """Create the demo province; the caller checks the database is empty."""
    rng = random.Random(seed)
    b = _Builder(rng)
    actor = Actor.system("demo-seed")

    ningxia = b.region("Ningxia", "province", None, 37.2, 106.2, zone="west", setting="rural")
    fujian = b.region("Fujian", "province", None, 26.1, 119.3, zone="east", setting="urban")
    west_villages: dict[str, list[Region]] = {}
    townships: dict[str, list[Region]] = {}
    counties = []
    for (name, lat, lon, towns), (east_name, elat, elon, street) in zip(WEST, EAST, strict=True):
        county = b.region(name, "county", ningxia, lat, lon)
        district = b.region(east_name, "county", fujian, elat, elon)
        county.partner_region = district
        district.partner_region = county
        counties.append((county, district))
        for town_name, tlat, tlon in towns:
            town = b.region(town_name, "township", county, tlat, tlon)
            townships.setdefault(name, []).append(town)
            west_villages.setdefault(name, []).extend(
                b.villages(town, rng.randint(4, 6), "Village"))
        sub = b.region(street, "township", district, elat, elon)
        west_villages.setdefault(east_name, []).extend(b.villages(sub, 3, "Community"))

    for data in SERVICE_TYPES:
        db.session.add(ServiceType(**data))

    providers = _seed_providers(b, counties, townships, west_villages)
    _seed_availability(rng, providers)
    created = _seed_residents(b, residents, west_villages, progress)
    _seed_users(actor, counties, west_villages, providers)
    audit.record(actor, "demo.seed", "region", None, residents=created)
    db.session.commit()
    return {
        "regions": len(b.regions),
        "service types": len(SERVICE_TYPES),
        "providers": len(providers),
        "residents": created,
        "users": len(demo_logins()),
    }


def _seed_providers(b: _Builder, counties, townships, villages) -> list[Provider]:
    rng = b.rng
    providers = []
    clinician_skills = [["gp", "chronic_care"], ["gp"], ["chronic_care"], ["mental_health"],
                        ["gp", "mental_health"]]
    n = 0
    for county, district in counties:
        for i in range(8):
            n += 1
            languages = ["zh-CN"] + (["en"] if i % 3 == 0 else []) + (["id"] if i == 4 else [])
            providers.append(Provider(
                kind="clinician", name=f"Dr. {rng.choice(SURNAMES)}{rng.choice(GIVEN)}",
                phone=b.phone(), email=f"clinician{n}@hospital.example.org",
                skills=clinician_skills[i % len(clinician_skills)], languages=languages,
                modalities=["video", "phone"], timezone="Asia/Shanghai",
                home_region=district, service_regions=[district, county],
                max_sessions_per_day=16, calendar_token=new_calendar_token()))
        # A county hospital GP of the western county itself.
        n += 1
        providers.append(Provider(
            kind="clinician", name=f"Dr. {rng.choice(SURNAMES)}{rng.choice(GIVEN)}",
            phone=b.phone(), email=f"clinician{n}@county.example.org",
            skills=["gp", "chronic_care"], languages=["zh-CN"], modalities=["video", "phone"],
            timezone="Asia/Shanghai", home_region=county, service_regions=[county],
            max_sessions_per_day=12, calendar_token=new_calendar_token()))
        for town in townships[county.name]:
            home = rng.choice([v for v in villages[county.name] if v.parent is town])
            for _ in range(2):
                providers.append(Provider(
                    kind="caregiver", name=f"{rng.choice(SURNAMES)}{rng.choice(GIVEN)}",
                    phone=b.phone(), skills=["elder_care"], languages=["zh-CN"],
                    modalities=["home_visit"], timezone="Asia/Shanghai", home_region=home,
                    service_regions=[town], max_sessions_per_day=6,
                    calendar_token=new_calendar_token()))
    db.session.add_all(providers)
    db.session.flush()
    return providers


def _seed_availability(rng: random.Random, providers: list[Provider]) -> None:
    """Remote care is a part of a working week: eastern clinicians give two half
    days to it, the county GPs three mornings, caregivers two mornings of visits."""
    rows = []
    for provider in providers:
        if provider.kind == "caregiver":
            days, hours = rng.sample(range(5), 2), [(time(8), time(12))]
        elif provider.home_region.zone == "west":
            days, hours = rng.sample(range(5), 3), [(time(8), time(12))]
        else:
            days, hours = rng.sample(range(5), 2), [rng.choice([(time(8, 30), time(11, 30)),
                                                                (time(14), time(17))])]
        rows += [{"provider_id": provider.id, "weekday": day, "start_time": opens,
                  "end_time": closes} for day in sorted(days) for opens, closes in hours]
    db.session.execute(sa.insert(AvailabilityRule), rows)


def _seed_residents(b: _Builder, count: int, villages, progress) -> int:
    rng = b.rng
    west = [v for name, vs in villages.items() for v in vs if v.setting == "rural"]
    east = [v for name, vs in villages.items() for v in vs if v.setting == "urban"]
    rows = []
    for i in range(count):
        urban = i % 7 == 6  # about one in seven lives in an eastern city
        village = rng.choice(east if urban else west)
        roll = rng.random()
        if urban and roll < 0.12:
            name, languages = rng.choice(ID_NAMES), ["id", "zh-CN"]
        elif urban and roll < 0.18:
            name, languages = rng.choice(EN_NAMES), ["en"]
        elif not urban and roll < 0.01:
            name, languages = rng.choice(ID_NAMES), ["id"]
        else:
            name, languages = rng.choice(SURNAMES) + rng.choice(GIVEN), ["zh-CN"]
        has_phone = rng.random() > 0.04
        rows.append(dict(
            name=name, phone=b.phone() if has_phone else None,
            birth_date=b.birth_date(elderly_heavy=not urban),
            sex=rng.choice(["female", "male"]) if rng.random() > 0.002 else "other",
            region_id=village.id, languages=languages, sms_consent=has_phone,
            notes="Lives alone." if rng.random() < 0.08 else None,
        ))
        if len(rows) == 500 or i == count - 1:
            db.session.execute(sa.insert(Resident), rows)
            if progress:
                progress(len(rows))
            rows = []
    return count


def _seed_users(actor: Actor, counties, villages, providers) -> None:
    xiji, gulou = counties[0]
    jiqiang_villages = [v for v in villages[xiji.name] if v.parent.name == "Jiqiang Town"][:2]
    clinician = next(p for p in providers if p.kind == "clinician" and p.home_region is gulou)
    caregiver = next(p for p in providers
                     if p.kind == "caregiver" and p.service_regions[0].name == "Jiqiang Town")
    for username, role, region_ids, provider_id, phone in (
        ("admin", Role.ADMIN, [], None, None),
        ("coordinator", Role.COORDINATOR, [xiji.id], None, None),
        ("vhw", Role.VHW, [v.id for v in jiqiang_villages], None, "+8613995000001"),
        ("clinician", Role.CLINICIAN, [], clinician.id, None),
        ("caregiver", Role.CAREGIVER, [], caregiver.id, None),
    ):
        users.add_user(actor, username, DEMO_PASSWORD, role, region_ids, provider_id,
                       phone=phone, language="zh-CN" if phone else None)

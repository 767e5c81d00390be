#!/usr/bin/env python3
"""Generates tests/data/pii_ko.jsonl: Korean identifiers in Korean sentences.

Each line: {"text", "spans": [{"label", "start", "end"}], "case"} with character offsets.
Positives use valid numbers (check digits computed here), with and without separators;
negatives use broken check digits, impossible dates, wrong region codes and look-alikes
(dates, order numbers, counters). Deterministic (seed 20240601).

Run: python3 scripts/gen_pii_ko.py > tests/data/pii_ko.jsonl
"""
import json, random

R = random.Random(20240601)
OUT = []


def emit(template, value=None, label=None, case=""):
    """template has one '{}' where value goes (or none for pure negatives)."""
    if value is None:
        OUT.append({"text": template, "spans": [], "case": case})
        return
    pre, post = template.split("{}", 1)
    text = pre + value + post
    spans = [] if label is None else [{"label": label, "start": len(pre), "end": len(pre) + len(value)}]
    OUT.append({"text": text, "spans": spans, "case": case})


def days(y, m):
    return [31, 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]


def rrn_check(d12, foreigner=False):
    w = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
    s = sum(a * b for a, b in zip(d12, w))
    return ((13 if foreigner else 11) - s % 11) % 10


def crn_ok(d):
    s = sum(x * (1 if i % 2 == 0 else 2) for i, x in enumerate(d[:12]))
    return (10 - s % 10) % 10 == d[12]


def rrn(foreigner=False, valid=True, bad_date=False):
    y = R.randint(1940, 2019)
    m = R.randint(1, 12)
    dd = R.randint(1, days(y, m))
    if bad_date:
        m, dd = R.choice([(13, 5), (0, 10), (2, 30), (4, 31), (11, 31), (6, 0)])
    g = (1 if y < 2000 else 3) + R.randint(0, 1)
    if foreigner:
        g += 4
    d = [int(c) for c in f"{y % 100:02d}{m:02d}{dd:02d}"] + [g] + [R.randint(0, 9) for _ in range(5)]
    c = rrn_check(d, foreigner)
    if not valid:
        c = (c + R.randint(1, 9)) % 10
    d.append(c)
    if crn_ok(d):  # ambiguous with a corporate number by construction: draw again
        return rrn(foreigner, valid, bad_date)
    return "".join(map(str, d))


def brn(valid=True):
    d = [R.randint(1, 9)] + [R.randint(0, 9) for _ in range(8)]
    w = [1, 3, 7, 1, 3, 7, 1, 3, 5]
    s = sum(a * b for a, b in zip(d, w)) + d[8] * 5 // 10
    c = (10 - s % 10) % 10
    if not valid:
        c = (c + R.randint(1, 9)) % 10
    return "".join(map(str, d + [c]))


def crn(valid=True):
    while True:
        d = [int(c) for c in R.choice(["1101", "1301", "1201", "1601", "1701", "2841", "1346", "1144"])]
        d += [R.randint(1, 8) for _ in range(2)] + [R.randint(0, 9) for _ in range(6)]
        s = sum(x * (1 if i % 2 == 0 else 2) for i, x in enumerate(d))
        c = (10 - s % 10) % 10
        if not valid:
            c = (c + R.randint(1, 9)) % 10
        full = d + [c]
        # Skip numbers that are also a valid resident number (ambiguous by construction).
        yy, mm, dd, gd = full[0] * 10 + full[1], full[2] * 10 + full[3], full[4] * 10 + full[5], full[6]
        cent = {9: 1800, 0: 1800, 1: 1900, 2: 1900, 3: 2000, 4: 2000, 5: 1900, 6: 1900, 7: 2000, 8: 2000}[gd]
        date_ok = 1 <= mm <= 12 and 1 <= dd <= days(cent + yy, mm)
        if date_ok and rrn_check(full[:12], gd >= 5) == full[12]:
            continue
        return "".join(map(str, full))


def hy(s, *cuts):
    out, prev = [], 0
    for c in cuts:
        out.append(s[prev:c])
        prev = c
    out.append(s[prev:])
    return "-".join(out)


SURN = "김이박최정강조윤장임한오서신권황안송류전홍고문양손배백허남심노하곽성차주우구민진나지엄채원천방공현함변염여추도소석선설마길연위표명기반라왕금옥육인맹제모탁국어은편용예경봉"
GIVEN = "민서준우현지수영호진성혜은태윤정하연재도희경훈석철동주아유빈"

RRN_T = ["주민등록번호는 {}입니다.", "제 주민번호 {} 확인 부탁드립니다.", "본인 확인을 위해 {} 를 입력했어요.",
         "신청서에 {}(주민등록번호)를 적었습니다.", "고객 정보: 홍길동, {}, 서울 거주", "{} 이 번호로 조회해 주세요."]
for i in range(60):
    v = rrn()
    emit(R.choice(RRN_T), hy(v, 6) if i % 2 == 0 else v, "KR_RRN", "rrn valid")
for i in range(30):
    v = rrn(foreigner=True)
    emit(R.choice(["외국인등록번호 {} 로 등록했습니다.", "외국인 고객의 등록번호는 {}입니다.", "체류 신고: {}"]),
         hy(v, 6) if i % 2 == 0 else v, "KR_FRN", "frn valid")
# Numbers issued since 2020-10 have no check digit: recognised when a cue word is present.
for i in range(20):
    v = rrn(valid=False)
    emit(R.choice(["주민등록번호: {}", "주민번호 {} 맞나요?"]), hy(v, 6), "KR_RRN", "rrn post-2020 with cue")
# Negatives: broken check digit without a cue, impossible dates.
for i in range(30):
    v = rrn(valid=False)
    emit(R.choice(["참조 코드 {} 로 처리됨", "시리얼 {} 확인", "{} 건이 접수되었습니다"]), hy(v, 6) if i % 2 else v, None, "rrn bad check, no cue")
for i in range(30):
    v = rrn(bad_date=True)
    emit(R.choice(["주민등록번호 {} 입력 오류", "번호 {} 는 잘못된 번호입니다", "{}"]), hy(v, 6) if i % 2 else v, None, "rrn impossible date")

PHONE_T = ["연락처는 {}입니다.", "{}로 전화 주세요.", "휴대폰 {} 으로 문자 보내드렸습니다.", "담당자 번호: {}",
           "문의는 {} (평일 9시~6시)", "긴급 시 {}번으로 연락 바랍니다."]
for i in range(80):
    kind = i % 8
    mid = R.randint(1000, 9999)
    last = R.randint(1000, 9999)
    if kind == 0:
        v = f"010-{mid}-{last}"
    elif kind == 1:
        v = f"010{mid}{last}"
    elif kind == 2:
        v = f"02-{R.randint(200, 999)}-{last}"
    elif kind == 3:
        v = f"0{R.choice([31, 32, 33, 41, 42, 43, 44, 51, 52, 53, 54, 55, 61, 62, 63, 64])}-{R.randint(200, 999)}-{last}"
    elif kind == 4:
        v = f"+82-10-{mid}-{last}"
    elif kind == 5:
        v = f"+82 10 {mid} {last}"
    elif kind == 6:
        v = f"011-{R.randint(200, 999)}-{last}"
    else:
        v = f"070-{mid}-{last}"
    emit(R.choice(PHONE_T), v, "KR_PHONE", "phone")
for i in range(30):
    v = R.choice([f"{R.randint(2019, 2025)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}",
                  f"{R.randint(2019, 2025)}.{R.randint(1, 12):02d}.{R.randint(1, 28):02d}",
                  f"{R.randint(100, 999)}-{R.randint(10, 99)}-{R.randint(100, 999)}",
                  f"{R.randint(1000, 9999)}-{R.randint(1000, 9999)}-{R.randint(1000, 9999)}"])
    emit(R.choice(["주문번호 {} 배송 조회", "{} 기준 잔액입니다", "송장번호 {} 확인 부탁드립니다", "접수일 {}"]), v, None, "date / order number")

for i in range(40):
    v = brn()
    emit(R.choice(["사업자등록번호 {} 입니다.", "세금계산서 발행: {}", "거래처 사업자번호는 {}이에요.", "{} (주식회사 해치)"]),
         hy(v, 3, 5) if i % 4 else v if False else hy(v, 3, 5), "KR_BRN", "brn valid")
for i in range(10):
    v = brn()
    emit("사업자등록번호: {}", v, "KR_BRN", "brn valid, no separators, cue")
for i in range(25):
    v = brn(valid=False)
    emit(R.choice(["코드 {} 로 조회", "관리번호 {} 입니다", "{}"]), hy(v, 3, 5), None, "brn bad check")

for i in range(30):
    v = crn()
    emit(R.choice(["법인등록번호 {} 로 등기되어 있습니다.", "법인번호: {}", "당사 법인등록번호는 {}입니다."]),
         hy(v, 6) if i % 3 else v, "KR_CRN", "crn valid")
for i in range(15):
    v = crn(valid=False)
    emit(R.choice(["관리 코드 {} 참조", "재고 {} 건"]), hy(v, 6), None, "crn bad check, no cue")

for i in range(25):
    v = R.choice("MSRODG") + (f"{R.randint(0, 99999999):08d}" if i % 2 else f"{R.randint(0, 999):03d}{chr(R.randint(65, 90))}{R.randint(0, 9999):04d}")
    emit(R.choice(["여권번호 {} 로 예약했습니다.", "여권: {}", "출국 시 여권 {} 를 제시하세요."]), v, "KR_PASSPORT", "passport")

REG = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28]
for i in range(25):
    v = f"{R.choice(REG)}-{R.randint(0, 99):02d}-{R.randint(0, 999999):06d}-{R.randint(0, 99):02d}"
    emit(R.choice(["운전면허번호 {} 입니다.", "면허증 번호: {}", "{} 면허로 렌트했어요."]), v, "KR_DRIVER_LICENSE", "driver licence")
for i in range(10):
    v = f"{R.choice([30, 45, 77, 99])}-{R.randint(0, 99):02d}-{R.randint(0, 999999):06d}-{R.randint(0, 99):02d}"
    emit(R.choice(["관리번호 {} 입니다.", "코드: {}"]), v, None, "driver licence bad region")

BANKS = ["국민은행", "신한은행", "우리은행", "하나은행", "농협", "기업은행", "카카오뱅크", "토스뱅크"]
for i in range(30):
    shape = R.choice([(6, 2, 6), (3, 3, 6), (3, 2, 6), (4, 4, 4), (3, 4, 4, 2)])
    v = "-".join("".join(str(R.randint(0, 9)) for _ in range(n)) for n in shape)
    v = str(R.randint(1, 9)) + v[1:]
    emit(R.choice(["{} 계좌로 입금 부탁드립니다.".replace("{}", R.choice(BANKS) + " {}"), "환불 계좌: " + R.choice(BANKS) + " {}",
                   "예금주 확인 후 {} 로 송금해 주세요."]), v, "KR_BANK_ACCOUNT", "bank account")

for i in range(40):
    name = R.choice(SURN) + "".join(R.choice(GIVEN) for _ in range(R.choice([1, 2, 2])))
    t = R.choice(["{}님 안녕하세요.", "{} 고객님, 주문이 완료되었습니다.", "성명: {}", "이름 {}", "예금주 {}", "{} 씨가 방문했습니다.",
                  "담당자 {}에게 전달했습니다.", "{} 님께서 요청하신 자료입니다."])
    emit(t, name, "KR_NAME", "name")
for t in ["선생님, 질문이 있습니다.", "하나님께 감사드립니다.", "오늘 날씨가 좋네요.", "고객님 안녕하세요.", "사장님께 보고했습니다.",
          "여러분 모두 수고하셨습니다.", "아저씨가 길을 알려주셨다.", "마음씨가 고운 사람", "부장님 회의 시간입니다.", "이사님께서 승인하셨습니다.",
          "손님이 많습니다.", "기사님 여기서 내려주세요.", "교수님 연구실이 어디인가요?", "부모님께 전화드렸다.", "스님이 말씀하셨다."]:
    emit(t, None, None, "name look-alike")

ADDR = ["서울특별시 강남구 테헤란로 {n}", "경기도 성남시 분당구 판교역로 {n}", "부산광역시 해운대구 해운대로 {n}",
        "서울 마포구 월드컵북로 {n}", "대전광역시 유성구 대학로 {n}", "인천광역시 연수구 컨벤시아대로 {n}",
        "서울특별시 종로구 세종대로 {n}", "경기도 수원시 영통구 광교로 {n}", "부산광역시 해운대구 우동 {n}",
        "서울특별시 강남구 역삼동 {n}", "제주특별자치도 제주시 연동 {n}", "대구광역시 수성구 범어동 {n}"]
for i in range(40):
    n = str(R.randint(1, 999)) + (f"-{R.randint(1, 99)}" if i % 3 == 0 else "")
    v = R.choice(ADDR).format(n=n) + (f", {R.randint(101, 120)}동 {R.randint(101, 2501)}호" if i % 4 == 0 else "")
    emit(R.choice(["주소는 {}입니다.", "배송지: {}", "{} 로 보내주세요.", "회사는 {}에 있습니다."]), v, "KR_ADDRESS", "address")
for t in ["앞으로 3개월 동안 진행합니다.", "서로 2번씩 확인했습니다.", "추가로 5개 주문할게요.", "새로 10명이 입사했다.", "마지막으로 1가지만 묻겠습니다.",
          "버스로 30분 걸립니다.", "대로 2차선이 막혔다.", "그 길로 3km 가세요."]:
    emit(t, None, None, "address look-alike")

for o in OUT:
    print(json.dumps(o, ensure_ascii=False))

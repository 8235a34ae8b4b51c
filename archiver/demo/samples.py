"""Sample mail for `archiver demo`: a few hundred readable messages of a small company.

Deterministic for a seed (only ``random.Random(seed)`` decides) and built
with the standard library's email package. Every kind a newcomer should see
archived is here: plain text in several charsets (UTF-8, ISO-8859-1,
ISO-8859-9, windows-1252), non-ASCII names and subjects (RFC 2047), HTML
newsletters with a text alternative, PDF and .ics attachments, and threads
of replies. All domains are reserved example domains (RFC 2606).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import random
from dataclasses import dataclass, field

__all__ = ["demo_messages"]

_DEMO_DOMAIN = "harborlane.example"
_DEMO_STAFF = {
    "james": ("James Carter", "james.carter"),
    "anna": ("Anna Schmidt", "anna.schmidt"),
    "mehmet": ("Mehmet Yılmaz", "mehmet.yilmaz"),
    "claire": ("Claire Dubois", "claire.dubois"),
    "priya": ("Priya Raman", "priya.raman"),
    "lars": ("Lars Nyström", "lars.nystrom"),
    "sofia": ("Sofia Rossi", "sofia.rossi"),
    "tom": ("Tom Becker", "tom.becker"),
}
_DEMO_ROLES = {
    "accounts": "Harbor Lane Accounts",
    "sales": "Harbor Lane Sales",
    "support": "Harbor Lane Support",
}
_DEMO_EXTERNAL = {
    "ostseestahl": ("Ostseestahl GmbH – Buchhaltung", "rechnung@ostseestahl.example"),
    "bank": ("Northbank Business Banking", "statements@bank.example"),
    "kaya": ("Kaya Lojistik A.Ş.", "operasyon@kaya-lojistik.example"),
    "lumiere": ("Atelier Lumière", "contact@atelier-lumiere.example"),
    "news": ("Instrument Makers Weekly", "newsletter@news.example.org"),
    "clouddesk": ("CloudDesk", "no-reply@clouddesk.example.net"),
    "meridian": ("Dana Whitfield (Meridian Labs)", "dana.whitfield@meridian.example"),
    "fjord": ("Ingrid Solberg", "ingrid@fjord-analytics.example"),
}
_DEMO_PRODUCTS = ("HL-200 pressure gauge", "HL-340 flow meter", "HL-90 thermocouple kit",
                  "HL-510 data logger", "HL-75 calibration bench", "HL-12 sensor cable")
_DEMO_PROJECTS = ("Atlas data logger", "calibration lab move", "ERP upgrade",
                  "trade fair in Hannover", "HL-510 firmware 2.0", "ISO 9001 audit")


_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _month_year(t: dt.datetime) -> str:
    """'March 2024', in English whatever the process locale (strftime's %B is not)."""
    return f"{_MONTH_NAMES[t.month - 1]} {t.year}"


def _staff(key: str) -> str:
    name, local = _DEMO_STAFF[key]
    return f"{name} <{local}@{_DEMO_DOMAIN}>"


def _role(key: str) -> str:
    return f"{_DEMO_ROLES[key]} <{key}@{_DEMO_DOMAIN}>"


def _external(key: str) -> str:
    name, addr = _DEMO_EXTERNAL[key]
    return f'"{name}" <{addr}>' if any(c in name for c in ",.()") else f"{name} <{addr}>"


def _tiny_pdf(lines: list[str]) -> bytes:
    """A small, valid one-page PDF showing `lines` (ASCII) in Helvetica."""
    text = " ".join(
        f"({line.replace(chr(92), '').replace('(', '[').replace(')', ']')}) Tj 0 -18 Td"
        for line in lines
    )
    stream = f"BT /F1 12 Tf 72 760 Td {text} ET".encode("ascii", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def _ics(uid: str, start: dt.datetime, minutes: int, summary: str, organizer: str,
         attendees: list[str], location: str) -> bytes:
    def stamp(t: dt.datetime) -> str:
        return t.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")

    lines = [
        "BEGIN:VCALENDAR", "PRODID:-//Harbor Lane//Demo Calendar//EN", "VERSION:2.0",
        "METHOD:REQUEST", "BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{stamp(start)}",
        f"DTSTART:{stamp(start)}", f"DTEND:{stamp(start + dt.timedelta(minutes=minutes))}",
        f"SUMMARY:{summary}", f"LOCATION:{location}", f"ORGANIZER:mailto:{organizer}",
        *[f"ATTENDEE;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:{a}" for a in attendees],
        "END:VEVENT", "END:VCALENDAR",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def _addr(mailbox: str) -> str:
    return mailbox.rsplit("<", 1)[1].rstrip(">")


@dataclass
class _DemoMail:
    """What a demo template produces; demo_messages() turns it into bytes."""

    sender: str
    to: list[str]
    subject: str
    text: str
    charset: str = "utf-8"
    cte: str = "quoted-printable"
    html: str | None = None
    cc: list[str] = field(default_factory=list)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # name, mime, data
    thread: bool = False  # others may reply to it


def demo_messages(n: int = 300, *, seed: int = 7) -> list[bytes]:
    """Varied, readable messages for a demo mailbox of a small fictional company.

    Harbor Lane Instruments (harborlane.example) gets supplier invoices with
    PDF attachments (German, ISO-8859-1), bank statements from bank.example,
    meeting invitations with .ics files, HTML newsletters, shipping notices
    in Turkish (ISO-8859-9), French customer mail (windows-1252), support
    tickets, HR and IT notices, and internal discussions with replies in
    threads. Wire form (CRLF), deterministic for a seed, dated from January
    2024 over about 18 months; about a kilobyte each on average. Built with
    the standard library's email package, so the bytes may differ between
    Python versions (generate_mix() does not depend on it).
    """
    from email import policy
    from email.message import EmailMessage

    rng = random.Random(f"archiver-demo-{seed}")
    start = dt.datetime(2024, 1, 8, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    span_minutes = 540 * 24 * 60
    threads: list[tuple[str, str, list[str], str, str]] = []  # id, subject, refs, sender, text
    messages = []
    for index in range(n):
        when = start + dt.timedelta(minutes=span_minutes * index // max(n, 1))
        when = when.replace(hour=8 + rng.randrange(10), minute=rng.randrange(60))
        parent = None
        if threads and rng.random() < 0.25:
            parent = threads[rng.randrange(len(threads))]
            mail = _demo_reply(rng, parent, when)
        else:
            mail = _demo_mail(rng, index, when)

        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = mail.sender
        msg["To"] = ", ".join(mail.to)
        if mail.cc:
            msg["Cc"] = ", ".join(mail.cc)
        msg["Subject"] = mail.subject
        msg["Date"] = email.utils.format_datetime(when)
        host = _addr(mail.sender).split("@")[1]
        message_id = f"<demo.{index:05d}.{rng.getrandbits(32):08x}@{host}>"
        msg["Message-ID"] = message_id
        references: list[str] = []
        if parent is not None:
            references = parent[2] + [parent[0]]
            msg["In-Reply-To"] = parent[0]
            msg["References"] = " ".join(references[-8:])
        cte = mail.cte if mail.text.isascii() or mail.cte != "7bit" else "quoted-printable"
        msg.set_content(mail.text, charset=mail.charset, cte=cte)
        if mail.html is not None:
            msg.add_alternative(mail.html, subtype="html", charset=mail.charset, cte=cte)
        for filename, mime, data in mail.attachments:
            maintype, subtype = mime.split("/", 1)
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        for number, part in enumerate(msg.walk()):
            if part.is_multipart():  # fixed boundaries: stdlib picks random ones
                part.set_boundary(f"=_hl_{index:05d}_{number}")
        messages.append(msg.as_bytes())
        if mail.thread or parent is not None:
            threads.append((message_id, mail.subject, references, mail.sender, mail.text))
            if len(threads) > 40:
                del threads[0]
    return messages


def _demo_mail(rng: random.Random, index: int, when: dt.datetime) -> _DemoMail:
    kind = _pick(rng, (("invoice", 12), ("bank", 6), ("invite", 10), ("newsletter", 8),
                       ("shipping", 8), ("french", 8), ("discussion", 20), ("support", 10),
                       ("hr", 4), ("it", 6), ("quote", 8)))
    product = _DEMO_PRODUCTS[rng.randrange(len(_DEMO_PRODUCTS))]
    project = _DEMO_PROJECTS[rng.randrange(len(_DEMO_PROJECTS))]
    staff = list(_DEMO_STAFF)
    person = staff[rng.randrange(len(staff))]
    first = _DEMO_STAFF[person][0].split()[0]
    amount = f"{rng.randrange(180, 24000)},{rng.randrange(100):02d}"
    number = f"{when:%Y}-{index:04d}"

    if kind == "invoice":
        text = (
            "Sehr geehrte Damen und Herren,\n\n"
            f"anbei erhalten Sie unsere Rechnung Nr. {number} über EUR {amount} für die "
            f"Lieferung von Edelstahlgehäusen (Größe M) für Ihr {product}.\n\n"
            "Zahlbar innerhalb von 30 Tagen ohne Abzug. Bei Rückfragen wenden Sie sich "
            "bitte an unsere Buchhaltung.\n\nMit freundlichen Grüßen\n"
            "Jürgen Weiß\nOstseestahl GmbH · Hafenstraße 12 · Kiel\n"
        )
        pdf = _tiny_pdf(["Ostseestahl GmbH", f"Rechnung Nr. {number}",
                         f"Betrag: EUR {amount}", "Zahlbar innerhalb von 30 Tagen"])
        return _DemoMail(_external("ostseestahl"), [_role("accounts")],
                         f"Rechnung Nr. {number} – Ostseestahl GmbH", text,
                         charset="iso-8859-1",
                         attachments=[(f"Rechnung_{number}.pdf", "application/pdf", pdf)])
    if kind == "bank":
        month = when - dt.timedelta(days=when.day)
        text = (
            "Dear customer,\n\n"
            f"your account statement for {_month_year(month)} is attached as a PDF.\n"
            f"Closing balance: EUR {rng.randrange(20000, 400000):,}.{rng.randrange(100):02d}\n\n"
            "This message was sent automatically; please do not reply.\n\n"
            "Northbank Business Banking\n"
        )
        pdf = _tiny_pdf(["Northbank Business Banking", f"Statement {_month_year(month)}",
                         "Account: DE00 0000 0000 0000 4242 00", "Harbor Lane Instruments"])
        return _DemoMail(_external("bank"), [_staff("anna")],
                         f"Your account statement {_month_year(month)}", text, cte="7bit",
                         attachments=[(f"Statement_{month:%Y-%m}.pdf", "application/pdf", pdf)])
    if kind == "invite":
        meeting = when + dt.timedelta(days=rng.randrange(1, 10))
        meeting = meeting.replace(hour=9 + rng.randrange(8), minute=0)
        attendees = [_staff(k) for k in rng.sample(staff, 3)]
        organizer = _staff(person)
        summary = f"{project[0].upper()}{project[1:]}: status meeting"
        day = f"{_DAY_NAMES[meeting.weekday()]}, {meeting.day} {_MONTH_NAMES[meeting.month - 1]}"
        text = (
            f"Hi all,\n\nlet's meet on {day} at {meeting:%H:%M} in the Harbor Room to go "
            f"through the {project}. Agenda:\n\n1. Where we are\n2. Open issues\n"
            "3. Next steps and owners\n\nThe invitation is attached.\n\n"
            f"Thanks,\n{first}\n"
        )
        ics = _ics(f"hl-{index:05d}@{_DEMO_DOMAIN}", meeting, 45, summary, _addr(organizer),
                   [_addr(a) for a in attendees], "Harbor Room")
        return _DemoMail(organizer, attendees, f"Invitation: {summary}", text, cte="7bit",
                         attachments=[("invite.ics", "text/calendar", ics)])
    if kind == "newsletter":
        headline = ["Sensor prices are falling", "What the new EU machinery rules mean",
                    "Calibration labs: 5 trends", "Interview: the last gauge maker of Leeds",
                    "Trade fair season is here"][rng.randrange(5)]
        text = (f"INSTRUMENT MAKERS WEEKLY\n\n{headline}\n\nRead this issue online: "
                "https://news.example.org/issues/latest\n\nYou receive this newsletter "
                "because you subscribed. Unsubscribe: https://news.example.org/u\n")
        page = (
            "<html><head><style>body{font-family:Georgia,serif} h1{color:#0a3d62}</style>"
            "</head><body>"
            f"<h1>{html.escape(headline)}</h1>"
            "<p>This week: prices, people &amp; precision. Our editors picked the "
            "stories that matter to instrument makers.</p>"
            '<p><a href="https://news.example.org/issues/latest">Read online</a></p>'
            '<img src="https://news.example.org/open.gif" width="1" height="1" alt="">'
            "<p style=\"font-size:small\">Unsubscribe: "
            '<a href="https://news.example.org/u">here</a></p></body></html>'
        )
        return _DemoMail(_external("news"), [_staff(person)],
                         f"Instrument Makers Weekly: {headline}", text, html=page)
    if kind == "shipping":
        text = (
            "Sayın Mehmet Bey,\n\n"
            f"{number} numaralı sevkiyatınız bugün İzmir deposundan çıkmıştır. "
            f"Tahmini teslim tarihi: {when + dt.timedelta(days=3):%d.%m.%Y}.\n\n"
            f"İçerik: {rng.randrange(2, 40)} koli, {product}\n"
            "Takip numarası: KL" + f"{rng.randrange(10**9):09d}\n\n"
            "Saygılarımızla,\nKaya Lojistik A.Ş. - Operasyon Ekibi\n"
        )
        return _DemoMail(_external("kaya"), [_staff("mehmet")],
                         f"Sevkiyat bildirimi {number} – yola çıktı", text,
                         charset="iso-8859-9", thread=True)
    if kind == "french":
        text = (
            "Bonjour Madame Dubois,\n\n"
            f"Nous souhaiterions commander {rng.randrange(2, 20)} unités du {product}. "
            "Pourriez-vous nous envoyer un devis révisé, livraison comprise, "
            "d’ici la fin de la semaine ?\n\n"
            "Par ailleurs, l’étalonnage des appareils reçus en mars est-il "
            "toujours couvert par la garantie ?\n\n"
            "Bien cordialement,\nHélène Girard\nAtelier Lumière – Lyon\n"
        )
        return _DemoMail(_external("lumiere"), [_staff("claire")],
                         f"Demande de devis – {product}", text, charset="windows-1252",
                         thread=True)
    if kind == "discussion":
        others = [k for k in staff if k != person]
        to = rng.sample(others, 2)
        questions = [
            f"Where do we stand with the {project}? I'd like to give James an update on Friday.",
            (f"The {product} test results came back. Two units failed the humidity test; "
            "can we look at it together this week?"),
            (f"Quick question about the {project}: do we still need the external "
            "consultant, or can we handle it in-house?"),
            f"I've drafted the plan for the {project}. Comments welcome before Thursday.",
        ]
        text = f"Hi {_DEMO_STAFF[to[0]][0].split()[0]},\n\n{questions[rng.randrange(4)]}\n\n" \
               f"Best,\n{first}\n"
        return _DemoMail(_staff(person), [_staff(k) for k in to],
                         f"{project[0].upper()}{project[1:]}", text, cte="7bit", thread=True)
    if kind == "support":
        customer = "meridian" if rng.random() < 0.6 else "fjord"
        problems = [f"our {product} shows a constant offset of 0.4 bar after the last update",
                    f"the {product} stopped logging after 2 048 entries",
                    f"we cannot find the calibration certificate for the {product}"]
        problem = problems[rng.randrange(len(problems))]
        text = (f"Hello support team,\n\n{problem}. Could you help us? The serial number "
                f"is HL{rng.randrange(10**6):06d}.\n\nKind regards,\n"
                f"{_DEMO_EXTERNAL[customer][0].split(' (')[0]}\n")
        return _DemoMail(_external(customer), [_role("support")],
                         f"Problem with {product}", text, cte="7bit", thread=True)
    if kind == "hr":
        topic = ["Summer party on the harbour terrace", "New holiday calendar",
                 "Welcome our new colleagues", "Office closed on Friday"][rng.randrange(4)]
        text = (f"Dear all,\n\n{topic} – details below.\n\nPlease reply to this email if "
                "you have questions.\n\nSofia\nPeople & Culture\n")
        return _DemoMail(_staff("sofia"), [f"All Staff <all@{_DEMO_DOMAIN}>"],
                         topic, text, cte="7bit")
    if kind == "it":
        subject, body = [
            ("Your password expires in 5 days",
             ("Your CloudDesk password expires in 5 days. Change it at "
             "https://clouddesk.example.net/account before it does.\n")),
            ("Backup report: 0 errors",
             (f"Nightly backup finished at 02:{rng.randrange(60):02d}. 0 errors, "
             f"{rng.randrange(100, 900)} GB copied.\n")),
            ("New sign-in to your account",
             ("We noticed a new sign-in from Firefox on Linux. If this was you, "
             "you can ignore this message.\n")),
        ][rng.randrange(3)]
        return _DemoMail(_external("clouddesk"), [_staff(person)], subject, body, cte="7bit")
    # quote
    pdf = _tiny_pdf(["Harbor Lane Instruments", f"Quotation Q-{number}",
                     f"{product}: EUR {amount}", "Valid for 30 days"])
    customer = "meridian" if rng.random() < 0.5 else "fjord"
    text = (f"Dear {_DEMO_EXTERNAL[customer][0].split()[0]},\n\nthank you for your interest "
            f"in the {product}. Please find our quotation Q-{number} attached "
            f"(EUR {amount}, delivery in 3 weeks).\n\nBest regards,\nClaire Dubois\nSales\n")
    return _DemoMail(_role("sales"), [_external(customer)], f"Quotation Q-{number}",
                     text, cte="7bit", thread=True,
                     attachments=[(f"Quotation_Q-{number}.pdf", "application/pdf", pdf)])


def _demo_reply(rng: random.Random, parent: tuple[str, str, list[str], str, str],
                when: dt.datetime) -> _DemoMail:
    _mid, subject, _refs, sender, text = parent
    staff = [_staff(k) for k in _DEMO_STAFF]
    replier = staff[rng.randrange(len(staff))]
    if replier == sender:
        replier = staff[(staff.index(replier) + 1) % len(staff)]
    sender_name = sender.split(" <")[0].strip('"')
    first = replier.split()[0]
    answers = [
        "Thanks, that works for me.",
        "Good point. I'll check and get back to you by tomorrow.",
        "Agreed. Let's discuss the details in the next meeting.",
        "I looked into it: we are on track.",
        "Could you send me the numbers as well?",
    ]
    if "mehmet" in sender or "kaya" in sender:
        answers = ["Teşekkürler, bilgi için. Teslimatı bekliyoruz.",
                   "Merhaba, teslim tarihi değişirse lütfen haber verin."]
    elif "lumiere" in sender:
        answers = [("Bonjour Madame Girard, merci pour votre demande. Vous recevrez le devis "
                   "révisé demain. Bien cordialement, Claire Dubois")]
        replier = _staff("claire")
    quoted = "\n".join("> " + line for line in text.splitlines())
    on = f"{when.day} {_MONTH_NAMES[when.month - 1][:3]} {when.year}"
    body = f"{answers[rng.randrange(len(answers))]}\n\n{first}\n\nOn {on}, " \
           f"{sender_name} wrote:\n{quoted}\n"
    prefix = "" if subject.lower().startswith(("re:", "aw:")) else "Re: "
    return _DemoMail(replier, [sender], prefix + subject, body)


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    total = sum(w for _, w in weighted)
    r = rng.randrange(total)
    for value, weight in weighted:
        if r < weight:
            return value
        r -= weight
    raise AssertionError("unreachable")
